"""What a delivered run tells an analyst in the Prefect UI: tables of counts and a verdict, shown in the run's
artifacts. A browser will not open a file:// link from the UI's http page, so what matters is put in the artifact
itself and the auditor report is named by its path.

Only counts, names of datasets, publications and recipients, and the checks' own summaries go in: never a value
from a row, nor a hidden count (an attack's narrowed cells stay in the restricted evidence file)."""

from __future__ import annotations

from disclosure_control.status import Status


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """"1 file", "2,048 files": the counts of a line an analyst reads."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def dataset_rows(validation: dict) -> list[dict]:
    """Rows read, staged and quarantined per export: what the analyst checks first."""
    return [{"dataset": d["dataset"], "file": d["source_file"], "rows read": d["rows_read"],
             "staged": d["rows_staged"], "quarantined": d["rows_quarantined"],
             "rows with warnings": d["rows_with_warnings"]} for d in validation["datasets"]]


def publication_rows(protections: list[dict]) -> list[dict]:
    return [{"publication": p["name"], "recipient": p["recipient"], "cells": p["summary"]["cells"],
             "primary": p["summary"]["by_status"][Status.PRIMARY],
             "secondary": p["summary"]["by_status"][Status.SECONDARY],
             "audit": "passed" if p["summary"]["audit"]["passed"] else "failed"} for p in protections]


def delivery_rows(deliveries: list[dict], extracts: list[dict]) -> list[dict]:
    """Files per recipient, with the rows of each extract it got (a count; the extract itself stays in its folder)."""
    return [{"recipient": d["recipient"], "name": d["name"], "files": len(d["files"]),
             "extracts": ", ".join(f"{e['name']} ({counted(e['rows'], 'row')})" for e in extracts
                                   if e["recipient"] == d["recipient"]) or "-"} for d in deliveries]


def check_rows(validation: dict, protections: list[dict], attack: list[dict], recipients_scanned: int,
               deliveries: list[dict], ledger_before: dict) -> list[dict]:
    """Every check of the run before its ledger entry, in the order it ran them. A run that fails one of the others
    delivers nothing and ends in a failed state, so a delivered run shows them passed; listing them says what held.
    The ledger as it stood is reported, not a stop: the run's own entry is chained to it either way."""
    unreconciled = [d["dataset"] for d in validation["datasets"]
                    if d["rows_read"] != d["rows_staged"] + d["rows_quarantined"]]
    rows = [{"check": "every row staged or quarantined", "result": "failed" if unreconciled else "passed",
             "detail": (f"not reconciled: {', '.join(unreconciled)}" if unreconciled else
                        f"{sum(d['rows_read'] for d in validation['datasets']):,} rows in "
                        f"{counted(len(validation['datasets']), 'export')}")}]
    rows += [{"check": f"protection audit of {p['name']}",
              "result": "passed" if p["summary"]["audit"]["passed"] else "failed",
              "detail": counted(p['summary']['cells'], 'cell')} for p in protections]
    rows.append({"check": "leak scan", "result": "passed",
                 "detail": f"no direct identifier a recipient is not entitled to, in the files of "
                           f"{counted(recipients_scanned, 'recipient')}"})
    rows += [{"check": f["check"], "result": "passed" if f["passed"] else "failed", "detail": f["detail"]} for f in attack]
    rows.append({"check": "manifests", "result": "passed",
                 "detail": f"{counted(len(deliveries), 'recipient')}, "
                           f"{counted(sum(len(d['files']) for d in deliveries), 'file')} hashed"})
    return [*rows, ledger_before]


def ledger_before_row(entries: int, problems: list[str]) -> dict:
    """The ledger the run's entry is chained to: every earlier entry in sequence, unchanged, signed by its key."""
    return {"check": "ledger before this run", "result": "failed" if problems else "passed",
            "detail": "; ".join(problems[:3]) if problems else "no earlier entry: this run's is the first" if not entries
            else f"{counted(entries, 'entry', 'entries')}: chain intact, each signed by the ledger's Ed25519 key"}


def ledger_row(entry: dict, closing: dict) -> dict:
    return {"check": "ledger entry", "result": "passed",
            "detail": f"run entry {entry['seq']} and delivered entry {closing['seq']}, each signed (Ed25519); "
                      f"SHA-256 {closing['entry_hash']}"}


def story_tables(validation: dict, protections: list[dict], deliveries: list[dict], extracts: list[dict],
                 checks: list[dict]) -> dict[str, tuple[str, list[dict]]]:
    """The run's tables by name, each with the line the UI shows above it."""
    return {"datasets": ("Rows read, staged and quarantined per export", dataset_rows(validation)),
            "publications": ("Cells, primary and secondary per publication", publication_rows(protections)),
            "deliveries": ("Files per recipient", delivery_rows(deliveries, extracts)),
            "checks": ("Every check before delivery", checks)}


def verdict_markdown(run_id: str, returns: tuple[str, ...], tables: dict[str, tuple[str, list[dict]]], report: str) -> str:
    """The run in a few lines, verdict first; the tables below it in the UI have the detail."""
    checks, datasets = tables["checks"][1], tables["datasets"][1]
    publications, deliveries = tables["publications"][1], tables["deliveries"][1]
    failed = [c["check"] for c in checks if c["result"] != "passed"]
    verdict = (f"**{len(failed)} of {len(checks)} checks failed**: {', '.join(failed)}" if failed
               else f"**Delivered: all {len(checks)} checks passed**")
    hidden = sum(p["primary"] + p["secondary"] for p in publications)
    return "\n".join([
        f"# Run {run_id}", "", f"{verdict} ({', '.join(returns)}).", "",
        f"- Validation: {counted(sum(d['rows read'] for d in datasets), 'row')} read, "
        f"{sum(d['quarantined'] for d in datasets):,} quarantined, in {counted(len(datasets), 'export')}",
        f"- Statistics: {counted(len(publications), 'publication')}, {counted(sum(p['cells'] for p in publications), 'cell')}, "
        f"{hidden:,} suppressed ({sum(p['primary'] for p in publications):,} primary, "
        f"{sum(p['secondary'] for p in publications):,} secondary)",
        f"- Delivered: {counted(sum(d['files'] for d in deliveries), 'file')} to "
        f"{counted(len(deliveries), 'recipient')} ({', '.join(d['recipient'] for d in deliveries)})",
        f"- Auditor report: `{report}`", ""])
