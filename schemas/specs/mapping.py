"""The column-mapping config (`--mapping`): where each dataset's export is and how to read it, when a council's MIS
names files or columns its own way. Without one, each contract's file name and columns are used as they are."""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.contract import contract_names, load_contract
from schemas.keys import check_keys

ENCODINGS = ("auto", "utf-8", "utf-8-sig", "cp1252")
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
MAPPING_KEYS = ("file", "encoding", "delimiter", "sheet", "columns")


class MappingError(ValueError):
    """A mapping config that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class SourceSpec:
    """Where one dataset's export is and how to read it (defaults: the contract's file name, auto encoding)."""

    dataset: str
    file: str
    encoding: str = "auto"
    delimiter: str = ","
    sheet: str | None = None
    columns: dict[str, str] = field(default_factory=dict)  # export column name -> contract column name



def parse_mapping(raw: dict) -> dict[str, SourceSpec]:
    """Each dataset's source, the contract's defaults overridden by the config's tables."""
    specs = default_sources()
    for dataset, table in raw.items():
        if dataset not in specs:
            raise MappingError(f"[{dataset}] is not a dataset (known: {', '.join(specs)})")
        check_keys(table, dataset, MAPPING_KEYS, (), MappingError)
        if table.get("encoding", "auto") not in ENCODINGS:
            raise MappingError(f"[{dataset}].encoding must be one of {', '.join(ENCODINGS)}")
        if table.get("delimiter", ",") not in DELIMITERS:
            raise MappingError(f"[{dataset}].delimiter must be one of {', '.join(map(repr, DELIMITERS))}")
        targets = load_contract(dataset).column_names
        for source, target in table.get("columns", {}).items():
            if target not in targets:
                raise MappingError(f"[{dataset}.columns] {source!r} maps to {target!r}, which is not a {dataset} column")
        specs[dataset] = SourceSpec(dataset, table.get("file", specs[dataset].file), table.get("encoding", "auto"),
                                    table.get("delimiter", ","), table.get("sheet"), dict(table.get("columns", {})))
    return specs


def default_sources() -> dict[str, SourceSpec]:
    return {name: SourceSpec(name, load_contract(name).file) for name in contract_names()}
