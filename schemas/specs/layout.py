"""The layouts of the DfE's XML returns: which items a record holds, where each sits and in what order, so that an
extract spec (`layout = "nccis_xml"`, `"ey_census_xml"`) maps staged fields to them and is checked at load like
any other spec.

NCCIS follows the management information requirement's monthly XML upload. Its structure is the one real NCCIS
schema found (the 2015-16 "MI Return NCCIS 2015.xsd") with the changes the 2019-20 Appendix D error rules show:
SENSupportFlag after SENDFlag, the Youth Contract items gone, the root named NCCIS. Sources, and what could not
be found, are in schemas/reference/dfe-specs/nccis-mi-requirement-notes.md; the XML schema written from them
is schemas/formats/nccis.xsd.

The early years census follows the business and technical specification's XML message: a header, then each
establishment with its characteristics, staff and pupil/child statistics modules and its children. The
specification's body could not be read here (schemas/reference/dfe-specs/early-years-census-notes.md): the
names confirmed from its editions and the DfE's pages are the header fields of its CSV header record,
ReferenceDate, PupilChildStatistics, PupilChild, FundingBasis (repeated, one per basis), EYPPBF, EstabEYTSTeachers,
EYEYTS and the EYUnder1s and EY1Years counts of the 2026 census; every other element name follows the COLLECT
pattern the school census uses and is marked inferred in schemas/formats/ey_census.xsd.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULTED = {"currency_lapsed": "N", "sen_support": "N"}  # kind -> what a missing staged value is written as
SUPPLIED = ("lead_la",)  # items the layout fills from the run (the LA), never from a staged field


@dataclass(frozen=True)
class Item:
    path: str  # the element's path inside a record, such as PersonalDetails/GivenName
    required: bool = False
    kind: str = "text"  # how a staged value is written (pipelines/nodes/dfe_xml.py text)


@dataclass(frozen=True)
class Layout:
    name: str
    root: str
    record: str  # the element of one record (one row of the extract)
    items: tuple[Item, ...]  # in the schema's order
    suffix: str = ".xml"
    group: str | None = None  # the item (kind establishment) placing each record under its establishment
    # Where the document holds what the receiver is owed outside its records (the file header; a setting's
    # modules, from the provider reference data): paths below the root, as the leak scan names them
    outside_records: tuple[str, ...] = ()

    @property
    def needs_a_value(self) -> tuple[Item, ...]:
        """The mapped items a record must carry whose kind gives no value of its own when the staged one is missing
        (no SEN provision is SEN support N; no lapse date, not lapsed)."""
        return tuple(i for i in self.mapped if i.required and i.kind not in DEFAULTED)

    @property
    def mapped(self) -> tuple[Item, ...]:
        """The items an extract spec maps to staged fields."""
        return tuple(i for i in self.items if i.kind not in SUPPLIED)


def _items(group: str, *specs: str | tuple) -> tuple[Item, ...]:
    """Items of one group: a name (optional text), or (name, required, kind)."""
    out = []
    for spec in specs:
        name, required, kind = (spec, False, "text") if isinstance(spec, str) else spec
        out.append(Item(f"{group}/{name}" if group else name, required, kind))
    return tuple(out)


NCCIS_XML = Layout("nccis_xml", "NCCIS", "YoungPersonsRecord", (
    *_items("PersonalDetails", ("YoungPersonsID", True, "young_person_id"), ("CohortStatus", True, "text"),
            ("GivenName", True, "text"), "MiddleName", ("FamilyName", True, "text"), "AddressLine1", "AddressLine2",
            "AddressLine3", "AddressLine4", "Town", "County", ("Postcode", True, "text"), ("Gender", True, "text"),
            ("DOB", True, "date"), ("Ethnicity", True, "main_ethnicity"), ("LeadLEA", True, "lead_la"),
            ("EducatedLEA", True, "text"), "TransferredToLACode", "LEACodeAtYear11", "UniqueLearnerNo",
            "UniquePupilNumber", ("GuaranteeStatusIndicator", False, "yes_no"), "PreviousYPIDIdentifier"),
    *_items("SeptemberGuarantee/Year11", "GuaranteeStatus", "LEACode"),
    *_items("SeptemberGuarantee/Year12", "GuaranteeStatus", "LEACode"),
    *_items("LevelOfNeed", ("LevelOfNeedCode", True, "text"), ("SENDFlag", True, "yes_no"),
            ("SENSupportFlag", True, "sen_support"), ("Characteristics/CharacteristicCode", False, "codes")),
    *_items("Activities/Cohort", ("ActivityCode", True, "text"), ("StartDate", True, "date"),
            ("DateAscertained", True, "date"), ("DateVerified", False, "date"), ("ReviewDate", False, "date"),
            ("DueToLapseDate", False, "date"), ("CurrencyLapsed", False, "currency_lapsed"), "EstablishmentNumber",
            "EstablishmentName", "UKProviderReferenceNumber", ("NEETStartDate", False, "date"),
            ("PredictedEndDate", False, "date")),
    *_items("IntendedDestination", "IntendedDestinationYr11"),
), outside_records=("FileHeader/",))
EY_CENSUS_XML = Layout("ey_census_xml", "EYCensus", "PupilChild", (
    Item("EstablishmentURN", True, "establishment"),
    *_items("", ("UPN", False, "text"), ("Surname", True, "text"), ("Forename", True, "text"), ("DOB", True, "date"),
            ("Sex", True, "text"), "Ethnicity", "PostCode", ("FundedHours", False, "hours"),
            ("ExtendedHours", False, "hours"), ("ExpandedHours", False, "hours"), ("HoursAtSetting", True, "hours"),
            "EligibilityCode", ("FundingBasis", False, "codes"), ("EYPPR", False, "boolean"), "EYPPBF",
            ("DAFIndicator", False, "boolean"), "SENprovision"),
), group="EstablishmentURN", outside_records=("Header/", "Establishment/EstablishmentCharacteristics/",
                                             "Establishment/StaffInformation/", "Establishment/PupilChildStatistics/"))
LAYOUTS = {layout.name: layout for layout in (NCCIS_XML, EY_CENSUS_XML)}
