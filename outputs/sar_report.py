"""The subject access report: one static HTML page (no scripts, no external loads, opens offline and prints) and
the same document as JSON, for the person or the officer answering their request.

Unlike the auditor report this holds a person's data on purpose, so both files are written together into the
folder the operator names, readable by the owner only, and appear only when both are complete.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from outputs.files import OWNER_ONLY, staged_output, write_text_atomic

STYLE = ("body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em;line-height:1.4}"
         "table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;padding:.2em .5em;"
         "text-align:left;vertical-align:top}th{background:#f3f3f3}.note{color:#555}"
         "section{break-inside:avoid-page}@media print{body{margin:0}}")


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fields(pairs: list[tuple[str, object]]) -> str:
    """One record as a two-column table (what, value): readable where a 36-column row is not."""
    return _table(["item", "value"], [[k, "" if v is None else v] for k, v in pairs])


def _shown(value, codes: dict[str, str] | None = None) -> object:
    """A value as a reader expects it: Yes/No for flags, a code with its meaning."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if codes and value is not None:
        return "; ".join(f"{c} ({codes[c]})" if c in codes else c for c in str(value).split(";"))
    return value


def _when(run: dict) -> str:
    return f"run {run.get('run_id')} ({run.get('period')}), created {run.get('created_at')}"


def _summary(document: dict) -> str:
    s = document["summary"]
    return "<h2>Summary</h2>" + _table(["what", "how many"], [
        ["records held (staged)", s["records"]],
        ["datasets", ", ".join(s["datasets"]) or "none"],
        ["rows held in the quarantine", s["quarantined_rows"]],
        ["corrections made", s["rectifications"]],
        ["records sent to recipients", s["delivered_records"]],
        ["recipients of those records", ", ".join(s["recipients"]) or "none"],
        ["published statistics or summaries that counted the person", s["aggregate_outputs"]],
        ["deliveries that could not be checked", s["not_checked"]],
    ])


def _records(document: dict) -> str:
    if not document["records"]:
        return "<h2>Records held</h2><p>No staged record matches the search.</p>"
    parts = ["<h2>Records held</h2>"]
    for section in document["records"]:
        labels, codes = section["labels"], section.get("code_labels", {})
        parts.append(f"<h3>{_e(section['dataset'])}: {_e(section['description'])} ({len(section['rows'])} "
                     f"record{'s' if len(section['rows']) != 1 else ''})</h3>")
        for number, row in enumerate(section["rows"], start=1):
            parts.append(f"<section><h4>Record {number}</h4>"
                         + _fields([(labels.get(k, k), _shown(v, codes.get(k))) for k, v in row.items()]) + "</section>")
    return "".join(parts)


def _quarantine(document: dict) -> str:
    rows = document["quarantine"]
    if not rows:
        return "<h2>Rows held in the quarantine</h2><p>None.</p>"
    parts = ["<h2>Rows held in the quarantine</h2><p class=\"note\">Rows that failed validation are kept, as read "
             "from the export, until they are fixed at source.</p>"]
    for row in rows:
        labels = document.get("column_labels", {}).get(row["dataset"], {})
        parts.append(f"<section><h4>{_e(row['dataset'])}, {_e(row['source_file'])} row {_e(row['source_row'])}, "
                     f"run {_e(row['run_id'])}</h4><p>Why it was held back: "
                     + "; ".join(f"{_e(m)} ({_e(r)})" for r, m in zip(row["rule_ids"], row["messages"], strict=False))
                     + "</p>" + _fields([(labels.get(k, k), v) for k, v in row["fields"].items()]) + "</section>")
    return "".join(parts)


def _rectifications(document: dict) -> str:
    rows = document["rectifications"]
    if not rows:
        return "<h2>Corrections</h2><p>None.</p>"
    return "<h2>Corrections</h2>" + _table(
        ["when", "dataset", "item", "was", "now", "reason", "ledger entry"],
        [[r["applied_at"], r["dataset"], r["column"], r["old_value"], r["new_value"], r["reason"], r["ledger_entry"]]
         for r in rows])


def _deliveries(document: dict) -> str:
    parts = ["<h2>What was sent, to whom and when</h2>"]
    if not document["deliveries"]:
        parts.append("<p>No delivered record-level file holds the person.</p>")
    for d in document["deliveries"]:
        runs = "; ".join(_when(r) for r in d["sent_in_runs"]) or _when(d["run"])
        parts.append(f"<section><h3>{_e(d['title'])}, to {_e(d['recipient_name'])}</h3>"
                     f"<p>Legal basis: {_e(d['legal_basis'])}.<br>File {_e(d['file'])}, sent in {_e(runs)}.<br>"
                     f"Found by: {_e(', '.join(d['matched_on']))}.</p>"
                     + "".join(_fields(list(row.items())) for row in d["rows"]) + "</section>")
    if document["aggregate_only"]:
        parts.append("<h3>Counted in statistics only</h3>" + _table(
            ["output", "recipient", "legal basis", "files", "when", ""],
            [[f"{a['title']} ({a['kind']})", a["recipient_name"], a["legal_basis"], len(a["files"]), _when(a["run"]), a["note"]]
             for a in document["aggregate_only"]]))
    if document["not_checked"]:
        parts.append("<h3>Not checked</h3>" + _table(
            ["recipient", "file", "when", "why"],
            [[n["recipient_name"], n["file"], _when(n["run"]), n["reason"]] for n in document["not_checked"]]))
    return "".join(parts)


def sar_html(document: dict) -> str:
    search = document["search"]
    asked = ", ".join(str(v) for k, v in search.items() if k != "by")
    header = (f"<h1>Subject access report</h1><p>Reference {_e(document['reference'])}, generated "
              f"{_e(document['generated_at'])} from the run folder {_e(document['run_folder'])}.</p>"
              f"<p>Searched by {_e(search['by'])}: {_e(asked)}.</p>"
              f"<p class=\"note\">This report holds personal data. Keep it as securely as the records it describes.</p>")
    notes = "<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in document["notes"]) + "</ul>"
    body = header + _summary(document) + _records(document) + _quarantine(document) + _rectifications(document) \
        + _deliveries(document) + notes
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>Subject access report {_e(document['reference'])}</title><style>{STYLE}</style></head>"
            f"<body>{body}</body></html>")


def write_sar(folder: Path, document: dict) -> list[Path]:
    """<reference>.html and .json in the folder, both or neither, owner-readable only. The file names carry the
    report's reference, never the person's name or UPN, so a folder listing discloses nothing."""
    names = [f"{document['reference']}.html", f"{document['reference']}.json"]
    texts = [sar_html(document), json.dumps(document, indent=2, ensure_ascii=False, default=str)]
    with staged_output(folder) as staging:
        for name, text in zip(names, texts, strict=True):
            write_text_atomic(staging / name, text, OWNER_ONLY)
    return [folder / name for name in names]

