"""Subject access (UK GDPR article 15): everything a run holds about one person, and what it sent about them.

The answer has to be complete and honest about its limits, so it is gathered from where the data really is,
not from what the pipeline believes it did: the staged rows of every dataset that holds people, the quarantine
(rows rejected in any run still hold the person's data), the corrections made to their records, and the
delivered files themselves, read back and searched for the person by the keys each recipient received (a UPN,
a person or child id, the recipient's keyed pseudonym, or name and date of birth together). When a file was
sent comes from its manifest and the ledger; a delivery that can no longer be read (an earlier run's file) or
searched (a pseudonymised file without its key) is listed as not checked, never silently left out. Published
statistics are listed as counting the person in aggregate only.

The document holds the person's own data by design, so it goes only to the folder the operator names, never to
04_deliveries/ or 05_report/, and nothing here logs or prints a value from it.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from outputs.files import file_sha256, read_csv_text, read_json
from pipelines.governance.rectify import loaded_period, staged_text
from pipelines.nodes.deidentify import WeakKey, pseudonyms
from pipelines.nodes.dfe_xml import LayoutError, xml_records
from pipelines.nodes.publication import selected_units, with_derived
from pipelines.store.keys import MissingKey, key_variable, pseudonymisation_key
from pipelines.store.ledger import warehouse_entries
from pipelines.store.warehouse import (PersonMatch, open_warehouse, quarantined_people, rectifications, staged_people,
                                       staged_tables)
from schemas.calendar import Term
from schemas.catalog import MANIFEST, RunPaths, extract_names, extract_spec, publication_names, publication_spec
from schemas.config import load_extract, load_publication, load_recipients
from schemas.contract import Contract, contract_names, load_contract
from schemas.lookups import codeset
from schemas.specs.extract import Extract
from schemas.specs.layout import LAYOUTS
from schemas.specs.publication import PublicationError
from schemas.specs.recipient import Recipient

PERSON_KEYS = ("upn", "uln", "person_id", "child_id")  # fields whose one value names one person
NAME_AND_BIRTH = ("surname", "forename", "date_of_birth")  # together, a key for extracts that carry no number
AGGREGATE_NOTE = "counted in aggregate statistics, not identifiable"
SUMMARY_NOTE = "counted in a summary (counts and totals per group), not identifiable"


class SarError(ValueError):
    """A request that cannot be answered as asked; str() is one line and never repeats the person's details."""


@dataclass(frozen=True)
class Search:
    upn: str | None = None
    surname: str | None = None
    date_of_birth: dt.date | None = None

    def as_dict(self) -> dict:
        if self.upn:
            return {"by": "UPN", "upn": self.upn}
        return {"by": "surname and date of birth", "surname": self.surname, "date_of_birth": self.date_of_birth.isoformat()}


def search(upn: str | None, surname: str | None, dob: str | None) -> Search:
    """The search as asked: a UPN alone, or a surname with a date of birth (YYYY-MM-DD)."""
    upn = (upn or "").strip().upper() or None
    surname = (surname or "").strip() or None
    if upn and (surname or dob):
        raise SarError("give either --upn or --surname with --dob, not both")
    if upn:
        return Search(upn=upn)
    if not (surname and dob):
        raise SarError("give --upn, or --surname together with --dob")
    try:
        born = dt.datetime.strptime(dob.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise SarError("--dob must be a date as YYYY-MM-DD") from None
    return Search(surname=surname, date_of_birth=born)


def check_report_folder(root: Path, folder: Path) -> None:
    """Refuse a report folder inside what is sent or audited: the report holds one person's data, and the
    auditor's check counts any file there that the ledger does not know as tampering."""
    target, paths = folder.resolve(), RunPaths(root)
    for kept in (paths.deliveries, paths.report):
        if target == kept.resolve() or target.is_relative_to(kept.resolve()):
            raise SarError(f"--report {folder}: inside {kept}; choose a folder outside {paths.deliveries.name}/ and "
                           f"{paths.report.name}/")


def reference() -> str:
    return f"sar-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def plain(value):
    """A JSON value: dates and times as ISO text, the rest as they are."""
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else value


def person_contracts(staged: set[str]) -> list[Contract]:
    """Contracts of staged datasets that hold people (reference data such as schools and postcodes has no
    direct identifier and is not about anyone)."""
    return [c for c in (load_contract(n) for n in contract_names() if n in staged) if c.direct_identifiers]


def upn_columns(contract: Contract) -> list[str]:
    """A UPN search looks at every UPN-shaped column: a former UPN is the same child under an older number."""
    return [c.name for c in contract.columns if c.format == "upn"]


def person_match(contract: Contract, wanted: Search) -> PersonMatch | None:
    """How to find the person in one dataset: by UPN or by surname, with the date of birth when given; None when the
    dataset cannot hold a match."""
    if wanted.upn:
        columns = upn_columns(contract)
        return PersonMatch(tuple(columns), wanted.upn, False, wanted.date_of_birth) if columns else None
    if not {"surname", "date_of_birth"} <= set(contract.column_names):
        return None
    return PersonMatch(("surname",), wanted.surname.lower(), True, wanted.date_of_birth)


def staged_records(connection: duckdb.DuckDBPyConnection, contract: Contract, wanted: Search) -> pl.DataFrame:
    match = person_match(contract, wanted)
    return pl.DataFrame() if match is None else staged_people(connection, contract.dataset, match)


def quarantined_rows(connection: duckdb.DuckDBPyConnection, contract: Contract, wanted: Search) -> list[dict]:
    """Rejected rows of any run that name the person, with the raw values as read."""
    match = person_match(contract, wanted)
    rows = [] if match is None else quarantined_people(connection, contract.dataset, match)
    return [{"run_id": r[0], "dataset": r[1], "source_file": r[2], "source_row": r[3], "rule_ids": r[4].split(";"),
             "messages": r[5].split(" | "), "fields": json.loads(r[6])} for r in rows]


def rectifications_of(connection: duckdb.DuckDBPyConnection, records: dict[str, pl.DataFrame],
                      contracts: dict[str, Contract], wanted: Search) -> list[dict]:
    """Corrections recorded against the person: made with the key of one of their staged rows, or (when the
    correction changed the key itself) setting it, or keyed by the searched UPN even if that row is no longer
    staged (since quarantined or purged): a correction is data held about them too."""
    made = rectifications(connection)
    batches = [e for e in warehouse_entries(connection) if e.get("kind") == "rectification"]
    texts = {name: frame.select(staged_text(contracts[name])) for name, frame in records.items()}
    found = []
    for r in made.iter_rows(named=True):
        text, contract = texts.get(r["dataset"]), contracts.get(r["dataset"])
        keyed = text is not None and r["key_column"] in text.columns and (
            r["key_value"] in text[r["key_column"]].to_list()
            or (r["column"] == r["key_column"] and r["new_value"] in text[r["column"]].to_list()))
        searched = bool(wanted.upn) and contract is not None and r["key_column"] in upn_columns(contract) \
            and wanted.upn in (r["key_value"], r["new_value"])
        if keyed or searched:
            entry = next((e["seq"] for e in batches
                          if e["body"].get("first_id", 0) <= r["id"] <= e["body"].get("last_id", -1)), None)
            found.append({k: plain(v) for k, v in r.items()} | {"ledger_entry": entry})
    return found


def person_identifiers(records: dict[str, pl.DataFrame], wanted: Search, rectified: list[dict]) -> dict[str, set[str]]:
    """Each key field -> the person's values (trimmed, upper-case), from every record found and, since files
    sent before a correction carry the old value, every value a correction replaced."""
    ids: dict[str, set[str]] = {f: set() for f in PERSON_KEYS}
    if wanted.upn:
        ids["upn"].add(wanted.upn)
    for frame in records.values():
        for column in frame.columns:
            key = "upn" if column == "former_upn" else column
            if key in ids:
                ids[key] |= {str(v).strip().upper() for v in frame[column].drop_nulls().to_list()}
    for r in rectified:
        key = "upn" if r["column"] == "former_upn" else r["column"]
        if key in ids and r["old_value"]:
            ids[key].add(r["old_value"].strip().upper())
    return {f: v for f, v in ids.items() if v}


def names_and_births(records: dict[str, pl.DataFrame], rectified: list[dict]) -> set[str]:
    """surname|forename|date of birth of every record found, normalised as delivered files are searched, plus
    the same with each corrected part as it was before the correction."""
    out = set()
    for frame in records.values():
        if set(NAME_AND_BIRTH) <= set(frame.columns):
            out |= set(frame.select(_joined([pl.col(c).cast(pl.String) for c in NAME_AND_BIRTH])).to_series().drop_nulls())
    for r in rectified:
        if r["column"] in NAME_AND_BIRTH and r["old_value"] and r["new_value"]:
            at, new, old = NAME_AND_BIRTH.index(r["column"]), r["new_value"].strip().upper(), r["old_value"].strip().upper()
            for parts in [p.split("|") for p in out if p.split("|")[at] == new]:
                out.add("|".join([*parts[:at], old, *parts[at + 1:]]))
    return out


def _normal(column: pl.Expr) -> pl.Expr:
    return column.cast(pl.String).str.strip_chars().str.to_uppercase()


def _joined(columns: list[pl.Expr]) -> pl.Expr:
    return pl.concat_str([_normal(c) for c in columns], separator="|")


def delivered_rows(frame: pl.DataFrame, extract: Extract, recipient: Recipient, ids: dict[str, set[str]],
                   people: set[str], key: bytes | None, searched: Search | None = None) -> pl.DataFrame:
    """The rows of one delivered extract (all text) that hold the person, with the columns they matched on.

    Pure: a column the recipient had in the clear is compared with the person's values; a pseudonymised one
    with the person's pseudonyms under the recipient's key (when given); a file with neither number is searched
    by name and date of birth together, and, for a search by surname and date of birth, by those two as given
    (the person may no longer be staged, while a file sent earlier still holds them)."""
    tests = {}
    for header, source in extract.columns:
        treatment = recipient.entitlement.treatment(source)
        if source in ids and treatment is None:
            tests[header] = _normal(pl.col(header)).is_in(sorted(ids[source]))
        elif source in ids and treatment == "pseudonym" and key is not None:
            tests[header] = pl.col(header).is_in(pseudonyms(pl.Series(sorted(ids[source])), key).to_list())
    headers = {source: header for header, source in extract.columns if recipient.entitlement.treatment(source) is None}
    if people and all(f in headers for f in NAME_AND_BIRTH):
        label = " + ".join(headers[f] for f in NAME_AND_BIRTH)
        tests[label] = _joined([pl.col(headers[f]) for f in NAME_AND_BIRTH]).is_in(sorted(people))
    if searched is not None and searched.surname and all(f in headers for f in ("surname", "date_of_birth")):
        label = f"{headers['surname']} + {headers['date_of_birth']} (as searched)"
        tests[label] = ((_normal(pl.col(headers["surname"])) == searched.surname.strip().upper())
                        & (pl.col(headers["date_of_birth"]).cast(pl.String) == searched.date_of_birth.isoformat()))
    if not tests:
        return frame.clear().with_columns(pl.lit(None, dtype=pl.List(pl.String)).alias("matched_on"))
    flags = frame.with_columns(expr.fill_null(False).alias(f"__match_{i}") for i, expr in enumerate(tests.values()))
    names = list(tests)
    matched = pl.concat_list([pl.when(pl.col(f"__match_{i}")).then(pl.lit(n)) for i, n in enumerate(names)]).list.drop_nulls()
    return (flags.filter(pl.any_horizontal(f"__match_{i}" for i in range(len(names))))
            .with_columns(matched.alias("matched_on")).drop(f"__match_{i}" for i in range(len(names))))


def searchable_by_key(extract: Extract, recipient: Recipient, ids: dict[str, set[str]]) -> list[str]:
    """Pseudonymised columns the person could be found in only with the recipient's key."""
    return [h for h, s in extract.columns if s in ids and recipient.entitlement.treatment(s) == "pseudonym"]


def counted(rows: pl.DataFrame, spec, period: str) -> bool:
    """Whether the person's rows fall in what a publication or summary counts (its `where`, for the period of
    the delivery). When that cannot be worked out, assume they were counted: a SAR errs towards saying more."""
    if rows.is_empty():
        return False
    try:
        term = Term.parse(period)
        frame = rows.drop("run_id", "source_row", strict=False)
        return selected_units(with_derived(frame, {c for c, _ in spec.where}, term), spec, term).height > 0
    except (PublicationError, ValueError, pl.exceptions.PolarsError):
        return True


def delivery_run(manifest: dict) -> dict:
    run = manifest.get("run", {})
    return {k: run.get(k) for k in ("run_id", "period", "created_at")}


def sent_in(ledger_runs: list[dict], path: str, sha256: str) -> list[dict]:
    """Every run the ledger records as delivering this exact file (same path, same hash)."""
    return [{"ledger_entry": e["seq"], "run_id": e["body"].get("run_id"), "period": e["body"].get("period"),
             "created_at": e["body"].get("created_at")} for e in ledger_runs if e["body"].get("outputs", {}).get(path) == sha256]


def earlier_versions(ledger_runs: list[dict], path: str, current: str | None) -> list[dict]:
    """Runs that delivered a different version of the file, which is no longer on disk to search."""
    return [{"ledger_entry": e["seq"], "run_id": e["body"].get("run_id"), "period": e["body"].get("period"),
             "created_at": e["body"].get("created_at")}
            for e in ledger_runs if path in e["body"].get("outputs", {}) and e["body"]["outputs"][path] != current]


def recipient_fields(recipient: Recipient) -> dict:
    return {"recipient": recipient.key, "recipient_name": recipient.name, "legal_basis": recipient.legal_basis}


@dataclass
class DeliverySearch:
    """What every delivered file is searched with: the person's keys, the manifests and the ledger's runs."""

    paths: RunPaths
    records: dict[str, pl.DataFrame]
    ids: dict[str, set[str]]
    people: set[str]
    ledger_runs: list[dict]
    key_for: Callable[[str], bytes]
    recipients: dict[str, Recipient]
    manifests: dict[str, dict]
    searched: Search
    keys: dict[str, bytes | None] = field(default_factory=dict)

    def key(self, key_id: str) -> bytes | None:
        """The recipient's pseudonymisation key, asked for once; None when it is not available here."""
        if key_id not in self.keys:
            try:
                self.keys[key_id] = self.key_for(key_id)
            except (MissingKey, WeakKey):
                self.keys[key_id] = None
        return self.keys[key_id]

    def counted_in(self, dataset: str, spec, recipient: str) -> bool:
        return counted(self.records.get(dataset, pl.DataFrame()), spec, self.manifests[recipient]["run"]["period"])

    def summary(self, name: str, extract: Extract) -> list[dict]:
        """A summary extract delivered now that counts the person (nobody is identifiable in it)."""
        if not self.delivered(extract.recipient, f"{name}.csv") or not self.counted_in(extract.dataset, extract, extract.recipient):
            return []
        return [{"kind": "summary extract", "name": name, "title": extract.title, "dataset": extract.dataset,
                 "files": [f"{name}.csv"], "run": delivery_run(self.manifests[extract.recipient]), "note": SUMMARY_NOTE}
                | recipient_fields(self.recipients[extract.recipient])]

    def publication(self, name: str) -> list[dict]:
        """A publication delivered now whose units include the person: counted, never identifiable."""
        publication = load_publication(publication_spec(name))
        files = [f"{t.name}.csv" for t in publication.tables if self.delivered(publication.recipient, f"{t.name}.csv")]
        if not files or not self.counted_in(publication.dataset, publication, publication.recipient):
            return []
        return [{"kind": "published statistics", "name": name, "title": publication.title, "dataset": publication.dataset,
                 "files": files, "run": delivery_run(self.manifests[publication.recipient]), "note": AGGREGATE_NOTE}
                | recipient_fields(self.recipients[publication.recipient])]

    def delivered(self, recipient: str, file: str) -> bool:
        """On disk and listed in the recipient's manifest: a complete delivery."""
        listed = {f["file"] for f in self.manifests.get(recipient, {}).get("files", [])}
        return file in listed and (self.paths.deliveries / recipient / file).is_file()

    def record_level(self, name: str, extract: Extract) -> tuple[list[dict], list[dict]]:
        """(the delivered file's rows that hold the person, what could not be checked) for one extract."""
        recipient = self.recipients[extract.recipient]
        path = self.paths.delivered_file(extract.recipient, name, extract.suffix)
        relative = path.relative_to(self.paths.root).as_posix()
        current = file_sha256(path) if self.delivered(extract.recipient, path.name) else None
        unchecked = [recipient_fields(recipient) | {
            "file": relative, "run": old, "reason": "an earlier version of this file was delivered in that run and is no "
            "longer on disk (the ledger keeps its hash, not its content), so whether it held this person cannot be checked"}
            for old in earlier_versions(self.ledger_runs, relative, current)]
        if current is None:
            return [], unchecked
        run = delivery_run(self.manifests[extract.recipient])
        pseudonymised = searchable_by_key(extract, recipient, self.ids)
        key = self.key(recipient.entitlement.key_id) if pseudonymised else None
        if pseudonymised and key is None:
            unchecked.append(recipient_fields(recipient) | {
                "file": relative, "run": run,
                "reason": f"{', '.join(pseudonymised)} is a keyed pseudonym and the key "
                          f"({key_variable(recipient.entitlement.key_id)}) is not available here, so pseudonymised "
                          "deliveries could not be checked without the key"})
        rows = delivered_rows(delivered_text(path, extract), extract, recipient, self.ids, self.people, key, self.searched)
        if not rows.height:
            return [], unchecked
        return [recipient_fields(recipient) | {
            "extract": name, "title": extract.title, "file": relative,
            "matched_on": sorted({m for matched in rows["matched_on"].to_list() for m in matched}),
            "rows": rows.drop("matched_on").to_dicts(), "run": run,
            "sent_in_runs": sent_in(self.ledger_runs, relative, current)}], unchecked


def delivered_text(path: Path, extract: Extract) -> pl.DataFrame:
    """A delivered extract's rows as text, columns named as the spec names them (an XML return read back)."""
    if extract.layout == "csv":
        return read_csv_text(path)
    try:
        return xml_records(path.read_bytes(), LAYOUTS[extract.layout])
    except LayoutError as error:
        raise SarError(f"{path}: {error}") from None


def deliveries(paths: RunPaths, records: dict[str, pl.DataFrame], wanted: Search, rectified: list[dict],
               ledger_runs: list[dict], key_for: Callable[[str], bytes]) -> tuple[list[dict], list[dict], list[dict]]:
    """(delivered records, aggregate-only outputs, not checked) from the delivered files and the ledger."""
    recipients = load_recipients()
    manifests = {r: read_json(paths.deliveries / r / MANIFEST) for r in recipients if (paths.deliveries / r / MANIFEST).is_file()}
    search_in = DeliverySearch(paths, records, person_identifiers(records, wanted, rectified), names_and_births(records, rectified),
                               ledger_runs, key_for, recipients, manifests, wanted)
    found, aggregate, unchecked = [], [], []
    for name in extract_names():
        extract = load_extract(extract_spec(name), recipients)
        if extract.by:
            aggregate += search_in.summary(name, extract)
        else:
            rows, missed = search_in.record_level(name, extract)
            found, unchecked = found + rows, unchecked + missed
    for name in publication_names():
        aggregate += search_in.publication(name)
    return found, aggregate, unchecked


def code_labels(contract: Contract, frame: pl.DataFrame, academic_year: int) -> dict[str, dict[str, str]]:
    """column -> {code: label} for the codes in the person's records: a report for a parent says "White -
    British", not WBRI."""
    out = {}
    for column in contract.columns:
        if not column.codeset or column.name not in frame.columns:
            continue
        labels = dict(codeset(column.codeset, academic_year).select("code", "label").iter_rows())
        codes = {code for value in frame[column.name].drop_nulls().to_list()
                 for code in (str(value).split(column.separator) if column.type == "code_list" else [str(value)])}
        if found := {code: labels[code] for code in sorted(codes) if code in labels}:
            out[column.name] = found
    return out


def record_section(contract: Contract, frame: pl.DataFrame, academic_year: int) -> dict:
    return {"dataset": contract.dataset, "description": contract.description,
            "labels": {"run_id": "Run", "source_row": "Row in the export"} | {c.name: c.label for c in contract.columns},
            "code_labels": code_labels(contract, frame, academic_year),
            "rows": [{k: plain(v) for k, v in row.items()} for row in frame.iter_rows(named=True)]}


def notes(wanted: Search) -> list[str]:
    out = ["Staged records are those of the latest run that loaded each dataset; the quarantine keeps the rejected "
           "rows of every run.",
           "Deliveries were searched as they are now in 04_deliveries/ (the latest run's); earlier versions known only "
           "from the ledger are listed as not checked.",
           "Some records hold other people's data (a parent's or carer's name, NI or NASS number, a contact "
           "telephone or email): review them before disclosure."]
    if not wanted.upn:
        out.insert(0, "Matched by surname and date of birth: the records may belong to more than one person (twins, "
                      "namesakes); check each before disclosure.")
    return out


def gather(root: Path, wanted: Search, key_for: Callable[[str], bytes] = pseudonymisation_key) -> dict:
    """The subject access document for one run folder: JSON-able, holding the person's data by design."""
    paths = RunPaths(root)
    with open_warehouse(paths.warehouse) as connection:
        contracts = {c.dataset: c for c in person_contracts(staged_tables(connection))}
        records = {name: staged_records(connection, c, wanted) for name, c in contracts.items()}
        records = {name: frame for name, frame in records.items() if frame.height}
        years = {name: loaded_period(connection, name).academic_year for name in records}
        quarantine = [row for c in contracts.values() for row in quarantined_rows(connection, c, wanted)]
        rectified = rectifications_of(connection, records, contracts, wanted)
        ledger_runs = [e for e in warehouse_entries(connection) if e.get("kind") == "run"]
    found, aggregate, unchecked = deliveries(paths, records, wanted, rectified, ledger_runs, key_for)
    return {
        "reference": reference(),
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "run_folder": str(root.resolve()),
        "search": wanted.as_dict(),
        "summary": {
            "records": sum(f.height for f in records.values()), "datasets": sorted(records),
            "quarantined_rows": len(quarantine), "rectifications": len(rectified),
            "delivered_records": sum(len(d["rows"]) for d in found),
            "recipients": sorted({d["recipient"] for d in found}),
            "aggregate_outputs": len(aggregate), "not_checked": len(unchecked),
        },
        "records": [record_section(contracts[name], records[name], years[name]) for name in sorted(records)],
        "quarantine": quarantine,
        "column_labels": {name: {c.name: c.label for c in contracts[name].columns}
                          for name in sorted({row["dataset"] for row in quarantine})},
        "rectifications": rectified,
        "deliveries": found,
        "aggregate_only": aggregate,
        "not_checked": unchecked,
        "notes": notes(wanted),
    }
