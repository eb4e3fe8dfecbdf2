"""Reading config: every policy and spec file is loaded by a load_* here, and every parser uses the one key check
(schemas.keys), so an unknown key (a typo) and a missing one are each an error naming the file and the key,
and no misspelt rule is silently ignored. A spec's references (its return, recipient, dataset and the columns it
counts) are checked at load, like dbt's ref(), so a spec that names something missing fails before any run.

The parsers live with their specs in schemas/specs/; they are imported where a spec is loaded, so that a command
that loads none (--help) starts without them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from schemas import catalog
from schemas.keys import check_keys

if TYPE_CHECKING:
    from disclosure_control.policy import Policy
    from schemas.specs.docs_assets import DocsAssets
    from schemas.specs.extract import Extract
    from schemas.specs.mapping import SourceSpec
    from schemas.specs.publication import Publication
    from schemas.specs.recipient import Recipient
    from schemas.specs.retention import RetentionPolicy
    from schemas.specs.run import RunConfig
    from schemas.specs.schedule import Schedule

Parsed = TypeVar("Parsed")


def read_parsed(path: Path, parse: Callable[[str], Parsed], kind: str, errors: tuple[type[Exception], ...]) -> Parsed:
    """A text file parsed, any failure one ValueError naming the file."""
    try:
        return parse(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"{path}: cannot read ({error.strerror})") from None
    except (*errors, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid {kind} ({error})") from None


def read_toml(path: Path) -> dict:
    return read_parsed(path, tomllib.loads, "TOML", (tomllib.TOMLDecodeError,))


def loaded(path: Path, parse: Callable[[dict], Parsed], error_type: type[ValueError]) -> Parsed:
    """A config file read once and checked; every error names the file (and the key, from parse)."""
    try:
        raw = read_toml(path)
    except ValueError as error:
        raise error_type(str(error)) from None
    try:
        return parse(raw)
    except error_type as error:
        raise error_type(f"{path}: {error}") from None


def load_disclosure_policy(path: Path | None = None) -> Policy:
    from disclosure_control.policy import PolicyError, parse_policy

    return loaded(path or catalog.DISCLOSURE_POLICY, parse_policy, PolicyError)


def load_recipients(path: Path | None = None) -> dict[str, Recipient]:
    from schemas.specs.recipient import RecipientError, parse_recipient

    return loaded(path or catalog.RECIPIENTS, lambda raw: {key: parse_recipient(key, spec) for key, spec in raw.items()},
                  RecipientError)


def checked_references(spec, error: type[ValueError], recipients: dict | None = None):
    """A spec's return, recipient and dataset must exist, or the spec would be dropped from every run (a misspelt
    return) or fail in the middle of one."""
    if spec.return_name not in catalog.RETURN_NAMES:
        raise error(f"return: {spec.return_name!r} is not one of {', '.join(catalog.RETURN_NAMES)}")
    if spec.recipient not in (recipients if recipients is not None else load_recipients()):
        raise error(f"recipient: {spec.recipient!r} is not in recipients.toml")
    if spec.dataset not in catalog.contract_names():
        raise error(f"dataset: {spec.dataset!r} is not a dataset with a contract "
                    f"({', '.join(catalog.contract_names())})")
    return spec


def load_filters(folder: Path) -> dict:
    from schemas.specs.publication import PublicationError, parse_filters

    return loaded(folder / catalog.FILTERS.name, parse_filters, PublicationError)


def load_publication(path: Path, recipients: dict[str, Recipient] | None = None, filters: dict | None = None
                     ) -> Publication:
    from schemas.contract import load_contract
    from schemas.specs.publication import PublicationError, checked_columns, parse_publication

    filters = filters if filters is not None else load_filters(path.parent)

    def parsed(raw: dict) -> Publication:
        publication = checked_references(parse_publication(raw, filters, path.stem), PublicationError, recipients)
        return checked_columns(publication, load_contract(publication.dataset).column_names)
    return loaded(path, parsed, PublicationError)


def load_extract(path: Path, recipients: dict[str, Recipient]) -> Extract:
    """An extract spec, refused at load if it asks for more than its recipient may have."""
    from schemas.contract import load_contract
    from schemas.specs.extract import ExtractError, check_entitled, check_sources_of_required_items, parse_extract
    from schemas.specs.publication import DERIVED_COLUMNS

    def parsed(raw: dict) -> Extract:
        extract = checked_references(parse_extract(raw, path.stem), ExtractError, recipients)
        contract = load_contract(extract.dataset)
        known = set(contract.column_names) | set(DERIVED_COLUMNS)
        for key, column in extract.columns_used:
            if column not in known:
                raise ExtractError(f"{key}: {column!r} is not a column of {extract.dataset} or a derived characteristic")
        if extract.layout != "csv":
            check_sources_of_required_items(extract, {c.name for c in contract.columns if c.required})
        check_entitled(extract, recipients[extract.recipient].entitlement)
        return extract
    return loaded(path, parsed, ExtractError)


def load_publications(recipients: dict[str, Recipient] | None = None) -> list[Publication]:
    recipients, filters = recipients or load_recipients(), load_filters(catalog.PUBLICATIONS_DIR)
    return [load_publication(catalog.publication_spec(name), recipients, filters) for name in catalog.publication_names()]


def load_extracts(recipients: dict[str, Recipient]) -> list[Extract]:
    return [load_extract(catalog.extract_spec(name), recipients) for name in catalog.extract_names()]


def load_run_config(policy_file: Path | None = None) -> RunConfig:
    """Every config a run uses, each file parsed once: recipients, publication and extract specs, and the
    disclosure policies (the run's, or each recipient's)."""
    from outputs.files import file_sha256
    from schemas.specs.run import RunConfig

    hashes = {f"{p.parent.name}/{p.name}": file_sha256(p) for p in catalog.config_files()}  # what this run reads
    recipients = load_recipients()
    files = {r.policy for r in recipients.values()} | ({policy_file} if policy_file else set())
    return checked_magnitude_rules(RunConfig(
        recipients, {p.name: p for p in load_publications(recipients)}, {e.name: e for e in load_extracts(recipients)},
        {f: load_disclosure_policy(f) for f in sorted(files)}, policy_file, hashes))


def checked_magnitude_rules(config: RunConfig) -> RunConfig:
    """A policy's dominance and p% rules apply to the amounts publications show beside their counts (measures):
    a policy file that has them must protect some publication with an amount, or they would never apply."""
    from disclosure_control.policy import PolicyError

    for path, policy in config.policies.items():
        governed = [p for p in config.publications.values() if config.policy_file_of(p) == path]
        for key, rule in (("dominance", policy.dominance), ("p_percent", policy.p_percent)):
            if rule is not None and governed and not any(p.measures for p in governed):
                raise PolicyError(f"{path}: {key}: applies to amounts published beside counts (a publication's "
                                  f"measures), and none of the publications it protects ({', '.join(p.name for p in governed)}) "
                                  "has one: remove it, or protect those publications under another policy")
    return config


class AccessError(ValueError):
    """An access policy that cannot be used; the message names the file and the key."""


def load_access_group(path: Path | None = None) -> str | None:
    """The Unix group that may read what runs leave on disk (access.toml), or None for owner-only."""
    import grp

    def parsed(raw: dict) -> str | None:
        check_keys(raw, "access", ("group",), ("group",), AccessError)
        if not isinstance(raw["group"], str):
            raise AccessError("access.group: a group name, or \"\" for none")
        if raw["group"]:
            try:
                grp.getgrnam(raw["group"])
            except KeyError:
                raise AccessError(f"access.group: there is no group {raw['group']!r} on this machine") from None
        return raw["group"] or None
    return loaded(path or catalog.ACCESS, parsed, AccessError)


def load_retention_policy(path: Path | None = None) -> RetentionPolicy:
    """The retention policy, checked against the contracts: each rule's date column must be a date column of its
    dataset, and every dataset with direct identifiers must be listed."""
    from schemas.contract import load_contract
    from schemas.specs.retention import RetentionError, parse_retention

    contracts = [load_contract(name) for name in catalog.contract_names()]
    date_columns = {c.dataset: {col.name for col in c.columns if col.type == "date"} for c in contracts}
    personal = [c.dataset for c in contracts if c.direct_identifiers]
    return loaded(path or catalog.RETENTION, lambda raw: parse_retention(raw, date_columns, personal), RetentionError)


def load_schedule(path: Path | None, returns: Collection[str], housekeeping: Collection[str] | None = None) -> Schedule:
    """The schedule config; returns are the known return names. housekeeping: the housekeeping flows the caller
    can run (serve passes them). Without it, housekeeping deployments are still checked, except for their flow's
    name, and left out, for callers that deal in returns."""
    from schemas.specs.schedule import Schedule, ScheduleError, parse_schedule

    path = path or catalog.SCHEDULE
    deployments = loaded(path, lambda raw: parse_schedule(raw, returns, housekeeping), ScheduleError)
    return Schedule(path, tuple(d for d in deployments if housekeeping is not None or not d.housekeeping))


def load_docs_assets(path: Path | None = None) -> DocsAssets:
    from schemas.specs.docs_assets import DocsAssetsError, parse_docs_assets

    return loaded(path or catalog.DATA_DOCS_ASSETS, parse_docs_assets, DocsAssetsError)


def load_mapping(path: Path | None) -> dict[str, SourceSpec]:
    """Each dataset's export: the contracts' defaults, or as the column-mapping config says."""
    from schemas.specs.mapping import MappingError, default_sources, parse_mapping

    return default_sources() if path is None else loaded(path, parse_mapping, MappingError)
