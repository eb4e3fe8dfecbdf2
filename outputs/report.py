"""The auditor report: one static HTML page (no scripts, no external loads, opens offline) and the same
content as JSON. It holds counts, statuses, the rules behind them and the intervals an intruder can compute,
never a record about a person nor the value of a hidden cell, so it may be sent to an external auditor.

The values of the hidden cells, and the reasons that state them, go only into the evidence file beside it
(auditor_evidence.html and .json): marked OFFICIAL-SENSITIVE and readable by its owner alone."""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from disclosure_control.status import SUPPRESSED, Status
from outputs.files import OWNER_ONLY, read_csv_text, write_text_atomic
from schemas.catalog import DELIVERIES, EVIDENCE, MANIFEST, ReportFiles, RunPaths
from schemas.specs.publication import AREA, Publication

MARKING = "OFFICIAL-SENSITIVE"

STATUS_COLOURS = {Status.PUBLISHED: "#4c9f70", Status.PRIMARY: "#c0392b", Status.SECONDARY: "#e67e22",
                  Status.STRUCTURAL_ZERO: "#7f8c8d", Status.ROUNDED: "#2980b9"}


def pattern_chart(by_status: dict[str, int]) -> str:
    """A bar split by cell status: the suppression pattern of a table at a glance (inline SVG)."""
    total = sum(by_status.values()) or 1
    x, parts = 0.0, []
    for status, count in by_status.items():
        width = 600 * count / total
        if width:
            parts.append(f'<rect x="{x:.1f}" y="0" width="{width:.1f}" height="18" fill="{STATUS_COLOURS[status]}">'
                         f"<title>{status}: {count}</title></rect>")
        x += width
    return f'<svg role="img" aria-label="cells by status" width="600" height="18">{"".join(parts)}</svg>'


STATUS_MEANINGS = {
    Status.PUBLISHED: "shown as counted",
    Status.PRIMARY: "hidden by a rule of the policy (too few units, or one contributor dominating an amount)",
    Status.SECONDARY: "hidden so that no primary cell can be worked out from the cells shown",
    Status.STRUCTURAL_ZERO: "a combination that cannot occur, shown as not applicable",
    Status.ROUNDED: "shown, rounded to the policy's base",
}
GLOSSARY = {
    "primary": "A cell the policy hides for itself: fewer units than the threshold, or an amount one or two "
               "contributors dominate (dominance and p% rules).",
    "secondary": "A cell hidden only so that a primary cannot be worked out by subtracting the cells shown from the "
                 "totals they add up to.",
    "interval": "The lowest and highest value an intruder can prove for a hidden cell from everything published "
                "(linear programs over the tables' sums), given here in whole units for counts.",
    "protection level": "How wide, as a percentage of the threshold, that interval must stay around the true value: "
                        "a hidden cell is safe when no intruder can narrow it further.",
    "information loss": "What protection costs readers: the number of secondary cells and the total of the counts "
                        "they hide.",
}


@dataclass(frozen=True)
class Markup:
    """A table cell's markup, built in this module from escaped parts (a link, a colour swatch)."""
    html: str


def link(text: str, href: str) -> Markup:
    return Markup(f'<a href="{html.escape(href)}">{html.escape(text)}</a>')


def number(value: int | float) -> str:
    """Counts with thousands separators; an amount to two places unless it is whole."""
    return f"{value:,}" if isinstance(value, int) else f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def _cell(value) -> str:
    if isinstance(value, Markup):
        return value.html
    if isinstance(value, int | float) and not isinstance(value, bool):
        return html.escape(number(value))
    return html.escape(str(value))


def _rows(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def anchor(title: str) -> str:
    return "s-" + "".join(c if c.isalnum() else "-" for c in title.lower())


def swatch(status: str) -> Markup:
    return Markup(f'<svg role="img" aria-label="{html.escape(status)}" width="14" height="14"><rect width="14" '
                  f'height="14" fill="{STATUS_COLOURS[status]}"><title>{html.escape(status)}</title></rect></svg>')


def verdict_html(checks: list[dict]) -> str:
    failed = [c["check"] for c in checks if c["result"] != "passed"]
    line = (f"{len(failed)} of {len(checks)} checks FAILED: {', '.join(failed)}." if failed else
            f"All {len(checks)} checks passed: the release was delivered.")
    return (f'<p class="verdict">{html.escape(line)}</p>'
            + _rows(["check", "result", "detail"], [[c["check"], c["result"], c["detail"]] for c in checks])
            + "<p>This report's SHA-256 goes into the run's ledger entry, written after it, chained to the entries "
            "above and signed with the ledger's Ed25519 key; the run's command prints that entry's hash. "
            "<code>lareturns audit RUN_FOLDER --expect-entry HASH --public-key KEY.pem</code> checks the chain, the "
            "signatures and every delivered file against it.</p>")


def reading_html() -> str:
    legend = _rows(["colour", "status", "meaning"], [[swatch(s), s, m] for s, m in STATUS_MEANINGS.items()])
    terms = "".join(f"<dt>{html.escape(t)}</dt><dd>{html.escape(d)}</dd>" for t, d in GLOSSARY.items())
    return (f"<p>The bars under each table show its cells by status, in these colours:</p>{legend}"
            f"<dl>{terms}</dl>")


def report_html(document: dict) -> str:
    """Verdict first, then a contents list of every section, a key to the colours, statuses and terms, and the
    detail: validation, the release, the attacks, each table, the extracts and each delivery with links to its files."""
    run = document["run"]
    intro = (f"<h1>lareturns auditor report</h1><p>Run {html.escape(run['run_id'])}, period "
             f"{html.escape(run['period'])}, created {html.escape(run['created_at'])}.</p>"
             "<p>This report shows no hidden count, only the intervals an intruder can prove. The hidden counts "
             f'and the reasons that state them are in the evidence file <a href="{EVIDENCE}.html">{EVIDENCE}.html</a> '
             "beside it: OFFICIAL-SENSITIVE, readable by its owner alone, not to leave the council.</p>")
    parts = [("Verdict", verdict_html(document["checks"]))]
    validation = document["validation"]
    parts.append(("Validation", _rows(
        ["dataset", "rows read", "staged", "quarantined", "rows with warnings"],
        [[d["dataset"], d["rows_read"], d["rows_staged"], d["rows_quarantined"], d["rows_with_warnings"]]
         for d in validation["datasets"]]) + f'<p><a href="{html.escape(validation["data_docs"])}">Great Expectations Data Docs</a></p>'))
    parts.append(("The release as one protection problem", "<p>Every publication of the run was protected "
                  "together with the publications that count the same units or some of them, with these relations, "
                  "derived from the publication specs:</p><ul>"
                  + "".join(f"<li>{html.escape(r)}</li>" for r in document.get("relations", [])) + "</ul>"))
    if document.get("known_published"):
        parts.append(("Figures already published elsewhere", "<p>Counted as public: shown where this release "
                      "has them, and protected around.</p>" + _rows(
            ["file", "publication", "figures used", "figures left out (another LA, period, area or category)"],
            [[k["file"], k["publication"], k["figures"], k["left_out"]] for k in document["known_published"]])))
    attack = "<p>An intruder's linear programs over everything delivered (and any figures already public, and the " \
             "earlier release with the mover assumption), sharing no code with the engine that protected it.</p>" + _rows(
        ["check", "result", "detail"], [[f["check"], "pass" if f["passed"] else "FAIL", f["detail"]] for f in document.get("attack", [])])
    for finding in (f for f in document.get("attack", []) if f.get("cells")):
        attack += f"<details><summary>{html.escape(finding['check'])}: {len(finding['cells'])} values</summary>" + _rows(
            ["release", "file", "area", "filters", "interval", "reason"],
            [[c["release"], c["file"], c["area"], " / ".join(c["filters"]),
              f"{number(c['interval'][0])} to {number(c['interval'][1])}", c["reason"]] for c in finding["cells"]]) + "</details>"
    parts.append(("Independent attack", attack))
    parts += [(table["name"], table_html(table)) for table in document["tables"]]
    parts.append(("Extracts", _rows(
        ["extract", "title", "recipient", "rows", "receiver's queries"],
        [[e["name"], e["title"], e["recipient"], e["rows"],
          ", ".join(f"{rule}: {n}" for rule, n in e.get("queries", {}).items()) or "none"]
         for e in document["extracts"]])))
    for delivery in document["deliveries"]:
        folder = f"../{DELIVERIES}/{delivery['recipient']}"  # the report folder's sibling in the run folder
        parts.append((f"Delivery to {delivery['name']}",
                      f"<p>Legal basis: {html.escape(delivery['legal_basis'])}. Folder "
                      f'<a href="{html.escape(folder)}/">{DELIVERIES}/{html.escape(delivery["recipient"])}</a>, listed in its '
                      f'<a href="{html.escape(folder)}/{MANIFEST}">{MANIFEST}</a>.</p>'
                      + _rows(["file", "rows", "bytes", "SHA-256"],
                              [[link(f["file"], f"{folder}/{f['file']}"), f.get("rows", ""), f["bytes"], f["sha256"]]
                               for f in delivery["files"]])))
    parts.insert(1, ("How to read this report", reading_html()))
    contents = "<nav><ol>" + "".join(f'<li><a href="#{anchor(t)}">{html.escape(t)}</a></li>' for t, _ in parts) + "</ol></nav>"
    body = "".join(f'<h2 id="{anchor(t)}">{html.escape(t)}</h2>{b}' for t, b in [parts[0], ("Contents", contents), *parts[1:]])
    style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}.verdict{font-size:1.3em;font-weight:bold}"
             "dt{font-weight:bold}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>lareturns auditor report</title>'
            f"<style>{style}</style></head><body>{intro}{body}</body></html>")


# The finer geographic levels a chart shows bars for, each with the column naming its areas
CHART_LEVELS = {"Local authority district": ("lad_name", "lad_code", "district"),
                "School": ("school_name", "school_urn", "school")}  # the level, its name and code columns
BAR, LABEL, WIDTH = 18, 220, 360  # pixels: a bar's height, the names' column, the longest bar


def headline(table: str, data: pl.DataFrame, meta: pl.DataFrame) -> dict | None:
    """The delivered table's first indicator by area at the total of every filter (its filter_default, if the meta
    names one), for its latest period: what the
    chart draws, as the recipient's EES file has it (symbols included), so the report shows no hidden count."""
    defaults = meta.filter(pl.col("col_type") == "Filter").select(
        "col_name", pl.col("filter_default").fill_null("").replace("", "Total") if "filter_default" in meta.columns
        else pl.lit("Total"))
    filters = defaults["col_name"].to_list()
    indicators = meta.filter(pl.col("col_type") == "Indicator")["col_name"].to_list()
    if not indicators or not data.height:
        return None
    latest = data.filter(pl.col("time_period") == data["time_period"].max())
    for level, (name, code, area) in CHART_LEVELS.items():
        rows = latest.filter(pl.col("geographic_level") == level, *(pl.col(f) == total for f, total in defaults.iter_rows()))
        if rows.height:
            return {"table": table, "indicator": indicators[0], "area": area, "filters": filters,
                    "bars": [list(r) for r in rows.sort(name, code)
                             .select(name, indicators[0]).iter_rows()]}
    return None


def as_number(value: str | None) -> float | None:
    """A cell's number, or None for a symbol, a blank or anything not finite."""
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return None
    return amount if math.isfinite(amount) else None


def bar_label(value: str | None) -> str:
    amount = as_number(value)
    if amount is None:
        return value or ""
    return number(int(amount) if amount.is_integer() else amount)


def headline_chart(chart: dict) -> str:
    """A labelled bar per area (inline SVG); a cell shown as a symbol gets its symbol and no bar, and bars are
    scaled to the largest magnitude (a negative amount draws no bar, only its label)."""
    amounts = [as_number(value) for _, value in chart["bars"]]
    largest = max((abs(a) for a in amounts if a is not None), default=0) or 1
    rows = []
    for i, ((area, value), amount) in enumerate(zip(chart["bars"], amounts, strict=True)):
        y, width = i * (BAR + 4), WIDTH * max(amount or 0, 0) / largest
        shown = bar_label(value)
        rows.append(f'<g><title>{html.escape(area)}: {html.escape(shown)}</title>'
                    f'<text x="{LABEL - 6}" y="{y + 13}" text-anchor="end" font-size="12">{html.escape(area)}</text>'
                    f'<rect x="{LABEL}" y="{y}" width="{width:.1f}" height="{BAR}" fill="{STATUS_COLOURS[Status.PUBLISHED]}"/>'
                    f'<text x="{LABEL + width + 4:.1f}" y="{y + 13}" font-size="12">{html.escape(shown)}</text></g>')
    what = (f"{chart['indicator']} by {chart['area']}, "
            f"{', '.join(chart['filters']) or 'no filter'} at Total ({chart['table']})")
    height = len(chart["bars"]) * (BAR + 4)
    return (f"<p>{html.escape(what)}:</p>"
            f'<svg role="img" aria-label="{html.escape(what)}" width="{LABEL + WIDTH + 80}" height="{height}">'
            f'{"".join(rows)}</svg>')


def table_html(table: dict) -> str:
    summary = table["summary"]
    audit = summary["audit"]
    verdict = "PASSED: no suppressed cell can be narrowed below its protection level" if audit["passed"] else "FAILED"
    return (
        f"<p>{html.escape(table['title'])}: {number(table['units'])} units counted"
        f" for {html.escape(table['recipient'])}"
        f"{', ' + number(table['units_without_area']) + ' left out with no known area' if table['units_without_area'] else ''};"
        f" published as {html.escape(', '.join(table['files']))}."
        f" Protected with {html.escape(', '.join(table.get('protected_with', [table['name']])))}"
        f"{'; earlier release: ' + html.escape(table['earlier']) if table.get('earlier') else ''}."
        f"</p><p>{html.escape(verdict)}. Policy {html.escape(summary['policy_version'])}, "
        f"threshold {table['policy']['threshold']}, protection level {table['policy']['protection_level']}%, "
        f"method {html.escape(summary['method'])}. Information loss: {number(summary['information_loss']['secondary_cells'])} "
        f"secondary cells, total value {number(summary['information_loss']['secondary_value'])}.</p>"
        + "".join(f"<p>{html.escape(note)}</p>" for note in summary.get("notes", []))
        + (headline_chart(table["headline"]) if table.get("headline") else "")
        + pattern_chart(summary["by_status"])
        + _rows(["status", "cells"], [[s, n] for s, n in summary["by_status"].items()])
        + "<details><summary>Suppressed cells</summary>"
        + _rows(["cell", "status", "rule", "lower", "upper"],
                [[c["cell"], c["status"], c["rule"], c["lower"], c["upper"]] for c in table["suppressed"]])
        + "</details>")


def evidence_html(evidence: dict) -> str:
    run = evidence["run"]
    sections = [f'<p class="marking">{MARKING}</p><h1>lareturns auditor evidence</h1><p>Run {html.escape(run["run_id"])}, '
                f"period {html.escape(run['period'])}. The value of every hidden cell and the decision behind it. Do not "
                "send this file outside the council; the auditor report beside it shows no value.</p>"]
    for table in evidence["tables"]:
        sections.append(f"<h2>{html.escape(table['name'])}</h2>" + _rows(
            ["cell", "status", "rule", "value", "reason", "lower", "upper", "protected", "protected against both releases"],
            [[c["cell"], c["status"], c["rule"] or "", c["value"], c["reason"], c["lower"], c["upper"], c["protected"],
              "" if c["protected_against_both"] is None else c["protected_against_both"]] for c in table["cells"]]))
    style = ("body{font-family:sans-serif;max-width:80em;margin:2em auto}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}.marking{font-weight:bold;text-align:center}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{MARKING}: lareturns auditor evidence'
            f"</title><style>{style}</style></head><body>{''.join(sections)}<p class=\"marking\">{MARKING}</p></body></html>")


def write_report(folder: Path, run: dict, validation: dict, data_docs: Path, release: dict, attack: list[dict],
                 extracts: list[dict], deliveries: list[dict], decisions: dict[str, pl.DataFrame],
                 publications: dict[str, Publication], areas: dict[str, str], checks: list[dict],
                 headline_files: dict[str, tuple[Path, Path]]) -> list[Path]:
    """The report (it may leave the building) and the evidence beside it (owner-only: hidden values), from the
    run's record, its checks, its validation summary, the release's protections and each publication's decision
    records. areas: the area dimension's codes -> names (the LA, districts, schools). headline_files: each
    publication's first EES data and meta file as delivered, which its chart draws (a publication whose
    recipient takes no EES files has none)."""
    charts = {name: headline(data.name.removesuffix(".csv"), read_csv_text(data), read_csv_text(meta))
              for name, (data, meta) in headline_files.items() if data.exists()}
    hidden = {name: cells.filter(pl.col("status").is_in(list(SUPPRESSED))) for name, cells in decisions.items()}
    label = {name: cell_label(publications[name], areas) for name in decisions}
    document = {"run": run, "checks": checks, "validation": validation | {"data_docs": str(data_docs)},
                "tables": [p | {"suppressed": suppressed_cells(hidden[p["name"]], label[p["name"]]),
                                "headline": charts.get(p["name"])} for p in release["protections"]],
                "relations": release["relations"], "known_published": release["known"], "attack": attack,
                "extracts": extracts, "deliveries": deliveries}
    evidence = {"run": run, "tables": [{"name": p["name"], "cells": evidence_cells(hidden[p["name"]], label[p["name"]])}
                                       for p in release["protections"]]}
    files = ReportFiles(folder)
    paths = [files.json, files.html, files.evidence_json, files.evidence_html]
    write_text_atomic(paths[0], json.dumps(document, indent=2, default=str))
    write_text_atomic(paths[1], report_html(document))
    write_text_atomic(paths[2], json.dumps({"classification": MARKING, **evidence}, indent=2, default=str), OWNER_ONLY)
    write_text_atomic(paths[3], evidence_html(evidence), OWNER_ONLY)
    return paths


def cell_label(publication: Publication, areas: dict[str, str]) -> pl.Expr:
    """A cell as a reader names it: each dimension's label and value, the area by its name ("Area: Melton;
    Sex: Female; Year group: Total")."""
    parts = [pl.concat_str([pl.lit("Area: "), pl.col(AREA).cast(pl.String).replace(areas)])]
    parts += [pl.concat_str([pl.lit(f"{f.label}: "), pl.col(f.name).cast(pl.String)]) for f in publication.filters]
    return pl.concat_str(parts, separator="; ").alias("cell")


def whole_interval() -> list[pl.Expr]:
    """The audit's interval for a count in whole units: a count is a whole number, so an intruder's proven bounds
    tighten to the integers inside them (the solver's 13.999999999999998 is 14)."""
    return [(pl.col("lower") - 1e-6).ceil().cast(pl.Int64).alias("lower"),
            (pl.col("upper") + 1e-6).floor().cast(pl.Int64).alias("upper")]


def suppressed_cells(hidden: pl.DataFrame, cell: pl.Expr) -> list[dict]:
    """Each suppressed cell named by its area and filter values, with its status, the rule behind it and the
    interval the audit proved an intruder can narrow it to (what anyone can compute), never its value."""
    return hidden.select(cell, "status", pl.col("rule").fill_null("protects a primary"), *whole_interval()).to_dicts()


def evidence_cells(hidden: pl.DataFrame, cell: pl.Expr) -> list[dict]:
    """Every suppressed cell with its value and the decision's reason: for the restricted evidence file only."""
    return hidden.select(cell, "status", "rule", "value", "reason", *whole_interval(), "protected",
                         "protected_against_both").to_dicts()


def run_result(paths: RunPaths, run: dict, report: Path, entry: dict, closing: dict, protections: list[dict],
               deliveries: list[dict], flow_run_id: str) -> dict:
    """What a run tells its caller (the CLI's summary; a scheduled run's result in Prefect): no value from a row.
    The flow run's id finds its artifacts and logs through Prefect's API."""
    return {"run_id": run["run_id"], "flow_run_id": flow_run_id, "period": run["period"],
            "deliveries": str(paths.deliveries), "report": str(report),
            "recovered": run["recovered"], "run_entry": entry["seq"],
            "ledger_entry": closing["seq"], "ledger_hash": closing["entry_hash"],
            "audit_passed": all(p["summary"]["audit"]["passed"] for p in protections),
            "publications": [{"name": p["name"], "recipient": p["recipient"], "cells": p["summary"]["cells"],
                              "primary": p["summary"]["by_status"][Status.PRIMARY],
                              "secondary": p["summary"]["by_status"][Status.SECONDARY],
                              "passed": p["summary"]["audit"]["passed"]} for p in protections],
            "delivered": [{"recipient": d["recipient"], "files": len(d["files"]),
                           "folder": str(paths.delivery(d["recipient"]))} for d in deliveries]}
