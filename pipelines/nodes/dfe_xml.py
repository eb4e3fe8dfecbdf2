"""The DfE's XML returns built from an extract's rows, and read back (for the leak scan and subject access).

No file I/O but the code sets read for the ethnicity main codes: the extract's rows (one per record, columns named
by the layout's item paths, schemas/specs/layout.py) and the header in, the document's bytes out. Elements follow
the layout's order; an optional item without a value is left out, and so is a group all of whose items are; values
are written as the layout's item kinds say (dates CCYY-MM-DD, flags Y/N). The same rows and header always give the
same bytes.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import polars as pl
from lxml import etree as ET

from pipelines.nodes.ees import district_geography
from schemas.calendar import Term
from schemas.lookups import codeset
from schemas.specs.layout import DEFAULTED, Item, Layout

SEN_SUPPORT = "K"  # the SEN provision code of SEN support (an EHC plan is E)
SEPARATOR = ";"  # how a staged code list is held


class LayoutError(ValueError):
    """Rows that cannot be written in the layout (a young person's id the NCCIS form cannot hold)."""


@dataclass(frozen=True)
class NccisHeader:
    database_id: str  # the 3-digit CCIS database id: the first three digits of every YoungPersonsID
    la_code: str  # the LA the file is for (SourceLEAs, and every record's LeadLEA)
    sent_on: dt.date
    period_end: dt.date  # the month end reported: currency is judged at it
    supplier_version: str
    schema_version: str = "2019-20"


def nccis_header(schools: pl.DataFrame, term: Term, sent_on: dt.date, supplier_version: str) -> NccisHeader:
    """The file header of a run's NCCIS upload: for the LA the staged schools are in, reporting the month end of
    the term's census month. The CCIS database id is the DfE's to allocate; the LA code stands in for it, so a
    real upload needs the LA's own (the requirement's header rules could not be read here)."""
    la = single_la(schools)
    return NccisHeader(la, la, sent_on, term.census_month_end, supplier_version)


@dataclass(frozen=True)
class EyCensusHeader:
    la_code: str
    term: Term
    made_at: dt.datetime  # in England: the header's DateTime
    release: str
    serial: str = "001"


def ey_census_header(schools: pl.DataFrame, term: Term, made_at: dt.datetime, release: str) -> EyCensusHeader:
    return EyCensusHeader(single_la(schools), term, made_at.replace(microsecond=0, tzinfo=None), release)


def single_la(schools: pl.DataFrame) -> str:
    las = district_geography(schools)["old_la_code"].unique().sort().to_list()
    if len(las) != 1:
        raise LayoutError(f"the staged schools span {len(las)} LAs; a return is made for one")
    return las[0]


def text(value, item: Item, header: NccisHeader | None) -> list[str]:
    """The element texts of one item for one record (several for a repeated code list; none for no value)."""
    if item.kind == "lead_la":
        return [header.la_code]
    if value is None or value == "":  # no lapse date: not lapsed; no SEN provision: no SEN support
        return [DEFAULTED[item.kind]] if item.kind in DEFAULTED else []
    if item.kind == "date":
        return [value.isoformat() if isinstance(value, dt.date) else str(value)]
    if item.kind == "yes_no":
        return ["Y" if value is True or value == "Y" else "N"]
    if item.kind == "boolean":
        return ["true" if value is True or value == "Y" else "false"]
    if item.kind == "hours":
        return [f"{round(float(value), 2):g}"]
    if item.kind == "sen_support":
        return ["Y" if value == SEN_SUPPORT else "N"]
    if item.kind == "currency_lapsed":
        return ["Y" if value < header.period_end else "N"]
    if item.kind == "codes":
        return [code for code in str(value).split(SEPARATOR) if code]
    if item.kind == "young_person_id":
        return [young_persons_id(str(value), header.database_id)]
    return [str(value)]


def young_persons_id(person_id: str, database_id: str) -> str:
    """NCCIS's 13-digit id: the database id, then the LA's own id as 10 digits (its digits, zero-padded)."""
    digits = re.sub(r"\D", "", person_id)
    if not digits or len(digits) > 10:
        raise LayoutError("a person id does not fit NCCIS's YoungPersonsID (at most 10 digits after the database id)")
    return database_id + digits.zfill(10)


def check_distinct_ids(rows: pl.DataFrame, layout: Layout, header: NccisHeader) -> None:
    """Two people whose ids have the same digits would share a YoungPersonsID, and NCCIS would merge them: refused."""
    for item in (i for i in layout.items if i.kind == "young_person_id" and i.path in rows.columns):
        people = rows[item.path].drop_nulls().cast(pl.String).unique().to_list()
        if len({young_persons_id(p, header.database_id) for p in people}) < len(people):
            raise LayoutError("two or more person ids have the same digits, so they would share a YoungPersonsID "
                              "(NCCIS's id keeps only digits): give each young person an id of its own digits")


def with_main_ethnicity(rows: pl.DataFrame, layout: Layout, academic_year: int) -> pl.DataFrame:
    """Extended ethnicity codes (WCOR) as their main codes (WBRI), which is what NCCIS records."""
    mains = dict(codeset("ethnicity", academic_year).select("code", "main_code").iter_rows())
    return rows.with_columns(pl.col(i.path).replace(mains) for i in layout.items
                             if i.kind == "main_ethnicity" and i.path in rows.columns)


def record_element(row: dict, layout: Layout, header: NccisHeader | None) -> ET._Element:
    record = ET.Element(layout.record)
    groups: dict[str, ET._Element] = {}
    for item in layout.items:
        if item.kind == "establishment":
            continue
        values = text(row.get(item.path), item, header) if (item.path in row or item.kind == "lead_la") else []
        if not values:
            continue
        *parents, name = item.path.split("/")
        parent = record
        for depth in range(len(parents)):
            key = "/".join(parents[:depth + 1])
            if key not in groups:
                groups[key] = ET.SubElement(parent, parents[depth])
            parent = groups[key]
        for value in values:
            ET.SubElement(parent, name).text = value
    return record


def header_element(header: NccisHeader) -> ET._Element:
    element = ET.Element("FileHeader")
    ET.SubElement(ET.SubElement(element, "Databases"), "DatabaseId").text = header.database_id
    ET.SubElement(ET.SubElement(element, "SourceLEAs"), "LEACode").text = header.la_code
    for name, value in (("DateOfSend", header.sent_on.isoformat()), ("PeriodEnd", header.period_end.isoformat()),
                        ("SupplierName", "lareturns"), ("SupplierXMLVersion", header.supplier_version),
                        ("XMLSchemaVersion", header.schema_version)):
        ET.SubElement(element, name).text = value
    return element


def nccis_document(rows: pl.DataFrame, layout: Layout, header: NccisHeader, academic_year: int) -> bytes:
    """The monthly NCCIS upload: the file header, then one YoungPersonsRecord per row, in the rows' order."""
    check_distinct_ids(rows, layout, header)
    root = ET.Element(layout.root)
    root.append(header_element(header))
    for row in with_main_ethnicity(rows, layout, academic_year).iter_rows(named=True):
        root.append(record_element(row, layout, header))
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


TERM_CODES = {"autumn": "AUT", "spring": "SPR", "summer": "SUM"}
AGE_COUNTS = ("EYUnder1s", "EY1Years", "EY2Years", "EY3Years", "EY4Years")  # PupilChildStatistics, by age
ESTABLISHMENT = (  # (module, element, provider column) of each setting's modules, from the provider reference data
    ("EstablishmentCharacteristics", "LEA", "old_la_code"), ("EstablishmentCharacteristics", "URN", "provider_urn"),
    ("EstablishmentCharacteristics", "OfstedURN", "ofsted_urn"),
    ("EstablishmentCharacteristics", "EstablishmentName", "provider_name"),
    ("EstablishmentCharacteristics", "PostCode", "postcode"),
    ("EstablishmentCharacteristics", "ProviderType", "provider_type"),
    ("EstablishmentCharacteristics", "HoursOpen", "hours_open_per_week"),
    ("EstablishmentCharacteristics", "WeeksOpen", "weeks_open_per_year"),
    ("StaffInformation", "EstabEYTSTeachers", "eyts_staff"), ("StaffInformation", "EYEYTS", "eyts_staff_with_children"),
)


def ey_census_header_element(header: EyCensusHeader) -> ET._Element:
    """The header, with the fields of the specification's CSV header record (H,EYC,SPR,2021,2021-01-21,L,999,...)."""
    element = ET.Element("Header")
    details = ET.SubElement(element, "CollectionDetails")
    for name, value in (("Collection", "EYC"), ("Term", TERM_CODES[header.term.name]),
                        ("Year", str(header.term.calendar_year)), ("ReferenceDate", header.term.census_date.isoformat())):
        ET.SubElement(details, name).text = value
    source = ET.SubElement(element, "Source")
    for name, value in (("SourceLevel", "L"), ("LEA", header.la_code), ("SoftwareCode", "lareturns"),
                        ("Release", header.release), ("SerialNo", header.serial),
                        ("DateTime", header.made_at.isoformat(timespec="seconds"))):
        ET.SubElement(source, name).text = value
    return element


def age_counts(children: pl.DataFrame, on: dt.date) -> dict[str, int]:
    """The setting's funded children in the return by whole years of age on the census day (under 1 to 4)."""
    born = pl.col("DOB")
    age = on.year - born.dt.year() - ((born.dt.month() > on.month) | ((born.dt.month() == on.month)
                                                                      & (born.dt.day() > on.day))).cast(pl.Int32)
    ages = children.select(age.alias("age"))["age"].to_list()
    return {name: sum(1 for a in ages if a == years) for years, name in enumerate(AGE_COUNTS)}


def establishment_element(provider: dict, children: pl.DataFrame, layout: Layout,
                          header: EyCensusHeader) -> ET._Element:
    element = ET.Element("Establishment")
    modules: dict[str, ET._Element] = {}
    for module, name, column in ESTABLISHMENT:
        if provider.get(column) is not None:
            if module not in modules:
                modules[module] = ET.SubElement(element, module)
            ET.SubElement(modules[module], name).text = f"{provider[column]:g}" if isinstance(
                provider[column], float) else str(provider[column])
    statistics = ET.SubElement(element, "PupilChildStatistics")
    for name, count in age_counts(children, header.term.census_date).items():
        ET.SubElement(statistics, name).text = str(count)
    records = ET.SubElement(element, "PupilChildren")
    for row in children.iter_rows(named=True):
        records.append(record_element(row, layout, None))
    return element


def ey_census_document(rows: pl.DataFrame, layout: Layout, providers: pl.DataFrame, header: EyCensusHeader) -> bytes:
    """The early years census message: the header, then each setting that has funded children in the rows (by
    URN), with its modules and its children in the rows' order."""
    root = ET.Element(layout.root)
    root.append(ey_census_header_element(header))
    urns = rows[layout.group].cast(pl.Int64)
    known = providers.with_columns(pl.col("provider_urn").cast(pl.Int64))
    missing = sorted(set(urns.to_list()) - set(known["provider_urn"].to_list()))
    if missing:
        raise LayoutError(f"{len(missing)} setting(s) with funded children are not in the provider reference data")
    for provider in known.filter(pl.col("provider_urn").is_in(urns.implode())).sort("provider_urn").iter_rows(named=True):
        children = rows.filter(urns == provider["provider_urn"])
        root.append(establishment_element(provider, children, layout, header))
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True) + b"\n"


def return_document(rows: pl.DataFrame, layout: Layout, reference: dict[str, pl.DataFrame], term: Term,
                    made_at: dt.datetime, release: str) -> bytes:
    """The DfE return an extract's layout names, for the LA of the staged schools (reference: the staged schools and
    providers); made_at is the time in England the run started, so a rerun of the same run gives the same bytes."""
    if layout.name == "nccis_xml":
        header = nccis_header(reference["schools"], term, made_at.date(), release)
        return nccis_document(rows, layout, header, term.academic_year)
    header = ey_census_header(reference["schools"], term, made_at, release)
    return ey_census_document(rows, layout, reference["providers"], header)


def parsed(document: bytes) -> ET._Element:
    """A return read back (with libxml2: a 20 MB upload in a fraction of a second), entities and the network
    never followed, comments and processing instructions dropped (they are no part of a return); one that is not
    well-formed XML (changed after it was written) is a LayoutError naming no content. A parser of its own each
    time: lxml's parsers are not to be shared between threads."""
    parser = ET.XMLParser(resolve_entities=False, no_network=True, remove_comments=True, remove_pis=True,
                          huge_tree=True)
    try:
        return ET.fromstring(document, parser)
    except ET.XMLSyntaxError as error:
        raise LayoutError(f"not readable as XML (line {error.lineno})") from None


def leaf_paths(element: ET._Element, prefix: str = "") -> list[tuple[str, str]]:
    """(path below the element, text) of every leaf, in document order."""
    out = []
    for child in element:
        path = f"{prefix}{child.tag}"
        out += leaf_paths(child, path + "/") if len(child) else [(path, child.text or "")]
    return out


def xml_records(document: bytes, layout: Layout) -> pl.DataFrame:
    """The records read back as text, one row each, columns named by item path (a repeated item's values
    joined with ';'), as the extract's rows were before they were written."""
    root = parsed(document)
    rows = []
    for record in root.iter(layout.record):
        row: dict[str, str] = {}
        for path, value in leaf_paths(record):
            row[path] = f"{row[path]}{SEPARATOR}{value}" if path in row else value
        rows.append(row)
    columns = [i.path for i in layout.items]
    return pl.DataFrame(rows, schema={c: pl.String for c in columns}) if rows else pl.DataFrame(
        schema={c: pl.String for c in columns})


def xml_leaves(document: bytes, layout: Layout) -> pl.DataFrame:
    """column, value: every leaf of the document, for the leak scan. A record's leaf is named by its item path
    (PersonalDetails/GivenName, Surname), any other by its path below the root (FileHeader/PeriodEnd,
    Establishment/EstablishmentCharacteristics/PostCode)."""
    pairs: list[tuple[str, str]] = []

    def walk(element: ET._Element, prefix: str) -> None:
        for child in element:
            if child.tag == layout.record:
                pairs.extend(leaf_paths(child))
            elif len(child):
                walk(child, f"{prefix}{child.tag}/")
            else:
                pairs.append((f"{prefix}{child.tag}", child.text or ""))

    walk(parsed(document), "")
    return pl.DataFrame(pairs, schema={"column": pl.String, "value": pl.String}, orient="row")
