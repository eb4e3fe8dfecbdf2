"""`lareturns audit RUN_DIR`: check a run's outputs without trusting the pipeline's own reports.

Every check works from what is on disk: the ledger (both copies), the delivered files, the published EES files and
the warehouse's staged identifiers. It recomputes rather than reads back: file hashes against the ledger's, the
chain's links, an interval attack on the whole release (pipelines/assurance/intruder.py, which shares no code with the
engine that protected it) with any figures already public, a differencing attack against the earlier release,
and the leak scan. Each finding says what failed and where, never a count of a hidden cell.

The attacks need to know how wide each primary's interval must stay: the policy's protection level around the
cell's true value, which they take from the restricted decision records (03_protected/) and the policy the run
recorded in its report.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from disclosure_control.status import SUPPRESSED, Status
from outputs.files import read_json
from outputs.story import counted
from pipelines.assurance import intruder
from pipelines.assurance.leakscan import leaks_by_recipient
from pipelines.nodes.ees import current_names
from pipelines.nodes.publication import rate_bounds
from pipelines.nodes.release import KnownFile, joined_groups, ours, populations, relations
from pipelines.store.commit import decision_hashes, latest_run, leftovers, output_hashes
from pipelines.store.history import EarlierRelease, earlier_for, known_files
from pipelines.store.keys import ledger_public_key
from pipelines.store.ledger import chain_problems, file_entries, signature_problems, warehouse_entries
from pipelines.store.warehouse import open_warehouse
from schemas.catalog import RunPaths, publication_names, publication_spec, table_file
from schemas.config import load_extracts, load_publication, load_recipients
from schemas.specs.publication import AREA, Measure, Publication

UNREADABLE = (ValueError, KeyError, TypeError, OSError, pl.exceptions.PolarsError, RuntimeError)  # a finding, not a traceback


@dataclass(frozen=True)
class Finding:
    check: str
    passed: bool
    detail: str
    cells: tuple[dict, ...] = ()  # the hidden values an attack narrowed: where, the interval it proved, and why


def narrowed(keys: list[tuple], found: dict, reason) -> tuple[dict, ...]:
    """Each key's cell as the report shows it: release, file, area, filter values, the attack's interval."""
    return tuple({"release": key[0], "file": key[1], "area": key[2], "filters": list(key[3:]),
                  "interval": [round(found[key][0], 2), round(found[key][1], 2)], "reason": reason(key)} for key in keys)


def ledger_findings(paths: RunPaths) -> tuple[list[Finding], dict | None]:
    """The chain in both copies, and whether they agree; returns the run entry the files in place should match."""
    with open_warehouse(paths.warehouse) as connection:
        stored = warehouse_entries(connection)
    exported = file_entries(paths.ledger)
    findings = [Finding("ledger chain (warehouse)", not (p := chain_problems(stored)), "; ".join(p) or f"{len(stored)} entries"),
                Finding("ledger chain (ledger.jsonl)", not (q := chain_problems(exported)), "; ".join(q) or f"{len(exported)} entries")]
    same = [e.get("entry_hash") for e in stored] == [e.get("entry_hash") for e in exported]
    findings.append(Finding("ledger copies agree", same, "identical" if same else
                            f"the warehouse holds {len(stored)} entries and ledger.jsonl {len(exported)}, or they differ"))
    return findings, latest_run(stored)


def hash_findings(paths: RunPaths, entry: dict | None) -> list[Finding]:
    """Every delivered and report file against the latest run's ledger entry, and no file the ledger lacks."""
    if entry is None:
        return [Finding("outputs recorded in the ledger", False, "the ledger has no run")]
    recorded, on_disk = entry["body"]["outputs"], output_hashes(paths.root)
    changed = sorted(f for f in recorded if f in on_disk and on_disk[f] != recorded[f])
    missing, extra = sorted(set(recorded) - set(on_disk)), sorted(set(on_disk) - set(recorded))
    decisions = entry["body"].get("decisions")
    same = decisions is None or decision_hashes(paths) == decisions
    return [Finding("file hashes match the ledger", not changed, f"changed: {', '.join(changed)}" if changed else f"{len(recorded)} files"),
            Finding("decision records are the delivered run's", same, "identical" if same else
                    "the decision records (03_protected/) are not those the run's entry records (edited, or rewritten by a later "
                    "run that did not deliver): the attack below reads them; the next run or `lareturns retention` "
                    "puts the run's own back"),
            Finding("every recorded file is there", not missing, f"missing: {', '.join(missing)}" if missing else "all present"),
            Finding("no unrecorded file", not extra, f"not in the ledger: {', '.join(extra)}" if extra else "none")]


def intruder_view(path_of, publications: list[Publication], policies: dict[str, dict], known: list[KnownFile] = (),
                  measure: Measure | None = None, also: tuple[tuple[Measure, Callable], ...] = ()
                  ) -> tuple[list[intruder.Population], intruder.Relations]:
    """The published files (path_of(publication, table name) -> its CSV), grouped as the specs group their
    populations, with the relations the specs imply; a file of figures others publish joins the population it
    counts, with its rows of this release's period and LA. With a measure, the files' amounts instead of their
    counts: each shown amount is known to within the half of its last decimal place; `also` gives amounts tied
    to it, each with the multiples of the measure it lies between in a finest cell (filter values -> low, high)."""
    groups = populations(publications)
    filters = {f.name: f for g in groups for f in g.filters}
    tied = tuple((m.col_name, bounds, 0.5 * 10.0 ** -m.dp) for m, bounds in also)
    view = []
    for group in groups:
        files = [replace(intruder.PublishedFile.read(path_of(p, t.name), 10.0 ** -measure.dp if measure else
                                                     policies[p.name].get("rounding_base"), measure.col_name if measure
                                                     else p.indicator, policies[p.name]["symbols"]["low"]), also=tied,
                         remainders=tuple(f.name for f in t.filters if f.unpublished))
                 for p in group.publications for t in p.tables if path_of(p, t.name).exists()]
        view.append(intruder.Population(group.name, files))
    for known_file in known:
        publication = known_file.publication(publications)
        population = next((v for v, g in zip(view, groups, strict=True) if publication in g.publications), None)
        if population is None or not population.files:
            continue
        first = population.files[0].data.row(0, named=True)
        rows = known_file.data.filter(ours(known_file.data, (first["time_period"], first["time_identifier"]), first["new_la_code"]))
        rows = rows.with_columns(pl.col(f.name).replace(dict.fromkeys(f.unpublished, intruder.REMAINDER))
                                 for f in publication.filters if f.name in rows.columns and f.unpublished)
        population.known.append(intruder.PublishedFile(f"known:{known_file.name}", rows, known_file.filters,
                                                       publication.indicator, None, policies[publication.name]["symbols"]["low"]))
    found = relations(groups)
    return view, intruder.Relations(
        within=tuple((r.population, r.other) for r in found if r.kind == "within"),
        part_of=tuple((r.population, r.subject, filters[r.subject].missing, *filters[r.subject].part_of)
                      for r in found if r.kind == "part_of"))


def protection_targets(work: RunPaths, publications: list[Publication], levels: dict[str, float],
                       column: str | None = None, value: str = "value",
                       protected: str = "protected") -> tuple[dict[tuple, tuple[float, float]], dict[tuple, float]]:
    """(release, file, area, filter values) -> the interval each protected primary must reach: its value less and
    plus the protection level (at least one; never below zero); and every hidden value of the release, from the
    restricted decision records. protected: the records' flag of a value held to its level in this release
    (`protected` for counts, `<measure>_protected` for an amount, whose `value` is the measure's column); column:
    also `protected_against_both` (held against the earlier release too), for the differencing attack."""
    targets, truth = {}, {}
    for key, row in hidden_rows(work, publications):
        truth[key] = amount = float(row[value])
        if row.get(protected) and (column is None or row.get(column) is not False):
            need = max(1.0, math.ceil(levels[row["__publication"]] / 100 * amount))
            targets[key] = (amount - min(amount, need), amount + need)
    return targets, truth


def hidden_rows(work: RunPaths, publications: list[Publication]):
    """(release, file, area, filter values) and the decision record of every hidden cell of the release (a
    category the files leave out named as the intruder names it)."""
    for publication in publications:
        path = work.decisions(publication.name)
        if not path.exists():
            continue
        cells = pl.read_parquet(path).filter(pl.col("status").is_in(list(SUPPRESSED)))
        for table in publication.tables:
            for row in cells.filter(pl.col("tables").list.contains(table.name)).iter_rows(named=True):
                yield (("current", table.name, row[AREA],
                        *(intruder.REMAINDER if row[f.name] in f.unpublished else row[f.name] for f in table.filters)),
                       row | {"__publication": publication.name})


def _narrow(found: dict, targets: dict, truth: dict) -> list[tuple]:
    """Hidden values the attack pinned below their target (default: to within one either way). An interval that
    misses the true value is an attack on an assumption the data breaks (more movers than assumed), not a
    disclosure."""
    out = []
    for key, (low, high) in found.items():
        want, value = targets.get(key), truth.get(key)
        if value is None and key[0] == "current" and intruder.REMAINDER in key:
            continue  # a category the files leave out, whose cell the records show: read off, as it may be
        if value is not None and not low - 1e-6 <= value <= high + 1e-6:
            continue
        if (want is None and high - low < 1 - 1e-6) or (want is not None and (low > want[0] + 1e-6 or high < want[1] - 1e-6)):
            out.append(key)
    return out


def release_attack(paths: RunPaths, delivered: Path, publications: list[Publication], policies: dict[str, dict],
                   known_dir: Path | None = None, run_id: str | None = None) -> list[Finding]:
    """The intruder on the whole release (and the figures already public), then on it and the earlier release
    together under the mover assumption. policies: publication -> the policy it was protected under. A release
    it cannot read, or that no table fits, fails with a finding (never a traceback)."""
    if not publications:
        return []
    try:
        levels = {n: p["protection_level"] for n, p in policies.items()}
        targets, truth = protection_targets(paths, publications, levels)
        held = set(protection_targets(paths, publications, levels, "protected_against_both")[0])
        measured = measures_of(publications)
        amounts = [amount_finding(paths, delivered, measure, carriers, policies, levels, [m for m, _ in measured])
                   for measure, carriers in measured]
        known = known_files(known_dir) if known_dir else []
        view, relations_ = intruder_view(lambda p, t: table_file(delivered / p.recipient, t), publications, policies, known)
        found = intruder.attack({"current": view}, relations_, targets=targets)
        movers = max(int(p.get("movers", 1)) for p in policies.values())
    except UNREADABLE as error:
        return [Finding("release attack", False, f"the release could not be attacked: {str(error).splitlines()[0]}")]
    narrow = _narrow(found, targets, truth)
    findings = [Finding("release attack", not narrow,
                        f"{len(narrow)} hidden values narrowed below their protection, e.g. {' / '.join(map(str, narrow[0][1:]))}"
                        if narrow else f"{counted(sum(len(v.files) for v in view), 'file')} of "
                        f"{counted(len(view), 'population')}, "
                        f"{counted(len(relations_.within) + len(relations_.part_of), 'relation')}: no protected value narrowed",
                        narrowed(narrow, found, lambda key: "narrowed below its protection level" if key in targets
                                 else "worked out exactly")), *amounts]
    groups = populations(publications)
    for members in joined_groups(groups, relations(groups)):
        mine = [p for m in members for p in m.publications]
        try:
            earlier = earlier_for(paths, mine, [m.key for m in members], before=run_id)
            if earlier is not None:
                findings.append(differencing_finding(view, relations_, (targets, truth), held, movers, mine, earlier[0],
                                                     policies, {m.name for m in members}))
        except UNREADABLE as error:
            findings.append(Finding(f"differencing attack on {', '.join(sorted(m.name for m in members))}", False,
                                    f"the earlier release could not be attacked: {str(error).splitlines()[0]}"))
    return findings


def measures_of(publications: list[Publication]) -> list[tuple[Measure, list[Publication]]]:
    """Each amount published beside counts, with the publications that show it."""
    found = {m.col_name: m for p in publications for m in p.measures}
    return [(found[name], [p for p in publications if found[name] in p.measures]) for name in sorted(found)]


def multiples(attacked: Measure, other: Measure, publications: list[Publication], academic_year: int) -> Callable:
    """What the intruder knows of `other` in a cell with these filter values, as multiples of `attacked`: for
    funding over hours, the public rates of the codes in the cell's category of the rate filter (all of them at
    Total); for hours over funding, their inverses."""
    tied = other if other.tied_to == attacked.col_name else attacked
    spec = next(f for p in publications for f in p.filters if f.name == tied.rate[0])
    by_label, everything = rate_bounds(tied, spec, academic_year)

    def bounds(values: dict) -> tuple[float, float]:
        low, high = by_label.get(values.get(tied.rate[0]), everything)
        return (low, high) if tied is other else (1 / high, 1 / low if low else math.inf)
    return bounds


def amount_finding(paths: RunPaths, delivered: Path, measure: Measure, carriers: list[Publication], policies: dict[str, dict],
                   levels: dict[str, float], measures: list[Measure]) -> Finding:
    """The intruder on an amount published beside counts (funded hours): every primary the run held to its
    protection level in the amount must keep it against the amounts shown. The amounts tied to it, or it is tied
    to (funding and hours), it reads as lying between the multiples of it the public rates allow."""
    linked = [m for m in measures if m.tied_to == measure.col_name or measure.tied_to == m.col_name]
    targets, truth = protection_targets(paths, carriers, levels, value=measure.col_name,
                                        protected=f"{measure.col_name}_protected")
    path_of = lambda p, t: table_file(delivered / p.recipient, t)  # noqa: E731
    first = pl.read_csv(path_of(carriers[0], carriers[0].tables[0].name), infer_schema=False, n_rows=1)
    year = int(first["time_period"][0][:4])  # the files' academic year (YYYYZZ)
    view, relations_ = intruder_view(path_of, carriers, policies, measure=measure,
                                     also=tuple((m, multiples(measure, m, carriers, year)) for m in linked))
    found = intruder.attack({"current": view}, relations_, targets=targets)
    primaries = {key for key, row in hidden_rows(paths, carriers) if row["status"] == Status.PRIMARY}
    narrow = [key for key in _narrow(found, targets, truth) if key in primaries]  # a secondary's amount may be
    # fixed where its count is not (the count keeps it hidden): the primaries' amounts are owed protection (their
    # level, or, where the run could only keep one from being worked out exactly, that)
    return Finding(f"release attack on {measure.col_name}", not narrow,
                   f"{len(narrow)} hidden amounts narrowed below their protection, e.g. {' / '.join(map(str, narrow[0][1:]))}"
                   if narrow else f"{sum(len(v.files) for v in view)} files: no protected amount narrowed",
                   narrowed(narrow, found, lambda key: "narrowed below its protection level" if key in targets
                            else "worked out exactly"))


def differencing_finding(view: list[intruder.Population], relations_: intruder.Relations, known: tuple[dict, dict],
                         held: set, movers: int, publications: list[Publication], earlier: EarlierRelease, policies: dict,
                         names: set[str]) -> Finding:
    """The intruder on one problem's populations in both releases, knowing of at most `movers` changes in each
    population the two releases are consistent with that for. It fails a value it works out exactly, and one it
    narrows below its protection level that the run held to that level against both releases (`held`); a value
    the run could only keep from exact recovery (a count that crossed the threshold) is reported."""
    earlier_view = earlier_release_view(earlier, publications, policies)
    now = [v for v in view if v.name in names]
    releases = {"current": now, "earlier": earlier_view}
    check = f"differencing attack on {', '.join(sorted(names))} against {earlier.label} ({movers} mover{'s' if movers != 1 else ''})"
    bounded = {n for n in sorted(names) if intruder.consistent(releases, relations_, movers, {n})}
    if not bounded:
        return Finding(check, True, f"the releases differ by more than {movers} unit{'s' if movers != 1 else ''} in every "
                       "population, so an intruder who knows of that many movers learns nothing from comparing them")
    targets, truth = known
    found = intruder.attack(releases, relations_, movers, targets, bounded)
    shown = _shown_values(releases)
    crossed, recovered = [], []
    for key in _narrow(found, targets, truth):
        exact = found[key][1] - found[key][0] < 1 - 1e-6
        (recovered if exact or key in held else crossed).append(key)
    detail = (f"{len(recovered)} values hidden in both releases (or worked out exactly) are narrowed by differencing, "
              f"e.g. {' / '.join(map(str, recovered[0]))}" if recovered else "no value hidden in both releases is narrowed")
    if crossed:
        detail += (f"; {len(crossed)} values no pattern could hold to their protection level (most shown in the other "
                   f"release: a count that crossed the threshold) are narrowed but not worked out, e.g. "
                   f"{' / '.join(map(str, crossed[0]))}")
    if bounded != names:
        detail += f"; more units changed than {movers} in {', '.join(sorted(names - bounded))}"
    reasons = {**{k: "shown in the other release (a count that crossed the threshold), which bounds it"
                  if shown.get(("earlier", *k[1:])) else "narrowed by comparing the releases whatever this one hides"
                  for k in crossed},
               **{k: "hidden in both releases, and narrowed by comparing them" if found[k][1] - found[k][0] >= 1 - 1e-6
                  else "worked out exactly by comparing the releases" for k in recovered}}
    return Finding(check, not recovered, detail, narrowed(recovered + crossed, found, reasons.get))


def earlier_release_view(earlier: EarlierRelease, publications: list[Publication], policies: dict
                         ) -> list[intruder.Population]:
    """The earlier release's files as the intruder holds them, under today's filter names and labels (the
    specs' `was`), so that it is compared with this release whatever it called its filters."""
    view, _ = intruder_view(lambda p, t: earlier.file(p.recipient, t), publications, policies)
    tables = {t.name: t.filters for p in publications for t in p.tables}  # each file under its own table's filters
    for population in view:
        population.files = [replace(f, data=current_names(f.data, tables[f.stem]), filters=tuple(
            next((g.name for g in tables[f.stem] if g.was == name), name) for name in f.filters)) for f in population.files]
    return view


def _shown_values(releases: dict[str, list[intruder.Population]]) -> dict[tuple, bool]:
    """(release, file, area, filter values) -> whether the value is shown (a count, rounded or not)."""
    shown = {}
    for label, view in releases.items():
        for population in view:
            for published in population.files:
                for row in published.data.iter_rows(named=True):
                    code = published.node(row)[1]
                    value = row[published.indicator]
                    shown[(label, published.stem, code, *(row[f] for f in published.filters))] = value.replace(".", "", 1).isdigit()
    return shown


def attack_findings(paths: RunPaths, known_dir: Path | None = None) -> list[Finding]:
    """The attacks on the run's release, with the policies its report records."""
    report = paths.report_files.json
    try:
        document = read_json(report)
        policies = {t["name"]: t["policy"] for t in document["tables"]}
        run_id = document["run"]["run_id"]
        publications = [load_publication(publication_spec(n)) for n in publication_names() if n in policies]
    except UNREADABLE as error:
        return [Finding("release attack", False, "the auditor report does not say which policies the release was "
                        f"protected under: {str(error).splitlines()[0]}")]
    return release_attack(paths, paths.deliveries, publications, policies, known_dir, run_id)


def leak_findings(paths: RunPaths) -> list[Finding]:
    recipients = load_recipients()
    found = leaks_by_recipient(paths.deliveries, paths.warehouse, recipients, load_extracts(recipients))
    return [Finding(f"leak scan of {recipient}", not leaks, "; ".join(map(str, leaks[:3])) or "no identifier")
            for recipient, leaks in found.items()]


def anchor_findings(paths: RunPaths, expected: str | None) -> list[Finding]:
    """The chain still holds an entry the auditor recorded outside the run folder (the hash `lareturns run` prints
    and its Prefect artifact keeps): without such an anchor, cutting the newest entries from both copies of the
    chain would leave a shorter chain that is still whole."""
    if expected is None:
        return []
    hashes = [e.get("entry_hash") for e in file_entries(paths.ledger)]
    found = expected in hashes
    return [Finding("ledger holds the recorded entry", found,
                    f"entry {hashes.index(expected) + 1} of {len(hashes)}" if found
                    else "not in the chain: entries were cut from its end, or it was rewritten")]


def signature_findings(paths: RunPaths, public_key: Path | None) -> list[Finding]:
    """Every entry of ledger.jsonl signed by the ledger's key: without it, whoever can write the run folder could
    append a correctly chained entry of their own."""
    if public_key is None:
        return [Finding("ledger signatures", False, "not checked: give the ledger's public key with --public-key")]
    try:
        key = ledger_public_key(public_key)
    except ValueError as error:
        return [Finding("ledger signatures", False, str(error))]
    entries = file_entries(paths.ledger)
    problems = signature_problems(entries, key)
    return [Finding("ledger signatures", not problems, "; ".join(problems[:3]) or f"{len(entries)} entries signed by the key")]


def interruption_findings(paths: RunPaths) -> list[Finding]:
    """What a crashed run left: a delivery its ledger entry says is pending, staging folders (record-level extracts
    among them), half-written files, counts kept for a run the ledger never recorded."""
    found = leftovers(paths)
    interrupted = found.lines(paths.root)[0] if found.pending is not None else "none"
    named = ", ".join(p.relative_to(paths.root).as_posix() for p in found.orphans[:5])
    left = f"{len(found.orphans)}: {named}; the next run or `lareturns retention` removes them" if found.orphans else "none"
    return [Finding("no interrupted delivery", found.pending is None, interrupted),
            Finding("nothing left by an interrupted run", not found.orphans, left)]


def verify_run(root: Path, expected_entry: str | None = None, known_dir: Path | None = None,
               public_key: Path | None = None) -> list[Finding]:
    paths = RunPaths(root)
    ledger, entry = ledger_findings(paths)
    return (ledger + signature_findings(paths, public_key) + anchor_findings(paths, expected_entry)
            + interruption_findings(paths) + hash_findings(paths, entry) + attack_findings(paths, known_dir)
            + leak_findings(paths))


def latest_entry_hash(root: Path) -> str | None:
    entries = file_entries(RunPaths(root).ledger)
    return entries[-1].get("entry_hash") if entries else None
