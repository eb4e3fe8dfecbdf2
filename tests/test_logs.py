"""No personal data in logs or messages: the whole census run at DEBUG over every malformed input the tests know,
its console output and every log line Prefect stored.

The run is a separate process, as an analyst starts it (`lareturns run`), with its own Prefect home so that its
log database can be read afterwards. Every logger is at DEBUG (Prefect's and the root logger, so DuckDB, Great
Expectations and HTTP libraries too), and the test looks for every direct identifier in the inputs.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import input_identifiers

MAX_WORDS = 5  # the longest identifier in words ("Flat 3 19 Willow Grove" style first lines stay within it)


def phrases(text: str) -> set[str]:
    """Every run of 1 to MAX_WORDS words, stripped of the punctuation that logs wrap values in."""
    words = [w.strip("'\"`,;:()[]{}<>") for w in re.split(r"\s+", text)]
    return {" ".join(words[i:i + n]).upper() for n in range(1, MAX_WORDS + 1) for i in range(len(words) - n + 1)}


def test_phrases_find_an_identifier_inside_a_log_line():
    assert {"MOHAMMED AKHTAR", "LE6 1BZ", "N855200125001"} <= phrases("matched 'Mohammed Akhtar' (LE6 1BZ) to N855200125001,")


def malformed_copy(source: Path, folder: Path) -> Path:
    """The exports with every row-level kind of malformed input the tests know, each made from a real row: a row
    with a field too many and one with a field too few, a NUL byte, a 5,000-character field, formula text,
    blank lines."""
    shutil.copytree(source, folder)
    header, *rows = (folder / "pupils.csv").read_text(encoding="utf-8").rstrip("\n").split("\n")
    surname = header.split(",").index("surname")

    def with_surname(row: str, value: str) -> str:
        fields = row.split(",")
        fields[surname] = value
        return ",".join(fields)

    broken = [rows[0] + ",extra", rows[1].rsplit(",", 1)[0], with_surname(rows[2], "Sm\x00ith"),
              with_surname(rows[3], "x" * 5000), with_surname(rows[4], "=HYPERLINK(1)")]
    (folder / "pupils.csv").write_text("\n".join([header, *broken, "", *rows[5:], ""]) + "\n", encoding="utf-8")
    return folder


def debug_run(input_dir: Path, out: Path, home: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    """`lareturns run census` at DEBUG in a process of its own; its output, and every log line and artifact
    Prefect stored (what its UI shows)."""
    env = os.environ | {
        "PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "DEBUG", "PREFECT_LOGGING_ROOT_LEVEL": "DEBUG",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_TASKS_DEFAULT_NO_CACHE": "true",
        "LARETURNS_KEY_HEALTH": secrets.token_hex(32), "COLUMNS": "200",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # a busy 2-core CI machine starts it slowly
    }
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-c", "from pipelines.cli import app; app()", "run", "census", "--input",
                           str(input_dir), "--out", str(out), "--period", "2026-spring"],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    with sqlite3.connect(home / "prefect.db") as db:
        stored = [message for (message,) in db.execute("SELECT message FROM log")]
        stored += [str(data) for (data,) in db.execute("SELECT data FROM artifact")]
    return done, stored


def leaked(source: Path, console: str, stored: list[str]) -> dict[str, int]:
    seen = phrases(console) | phrases("\n".join(stored))
    found = {kind: len({v.upper() for v in values} & seen) for kind, values in input_identifiers(source).items()}
    return {kind: n for kind, n in found.items() if n}


def test_a_debug_run_over_malformed_rows_logs_no_direct_identifier(small_faulty, tmp_path):
    """Faulty values (one row in twenty) and every malformed row: all quarantined, none of them in any message."""
    done, stored = debug_run(malformed_copy(small_faulty, tmp_path / "in"), tmp_path / "out", tmp_path / "prefect-home")
    assert done.returncode == 0, done.stderr[-3000:]
    console = done.stdout + done.stderr
    assert len(stored) > 50 and console.count("| DEBUG ") > 20  # DEBUG really was on, in the store and on screen
    quarantined = json.loads((tmp_path / "out" / "01_validated" / "validation.json").read_text())["datasets"]
    pupils = next(d for d in quarantined if d["dataset"] == "pupils")
    assert pupils["blank_lines_skipped"] == 2 and {"PUP-ROW-FIELDS", "PUP-ROW-NUL", "PUP-ROW-LENGTH",
                                                   "PUP-SURNAME-FORMULA"} <= {r["rule_id"] for r in pupils["rule_counts"]}
    assert (f"pupils (pupils.csv): {pupils['rows_read']:,} rows read, {pupils['rows_staged']:,} staged, "
            f"{pupils['rows_quarantined']:,} quarantined") in "\n".join(stored)  # the counts, in the UI's log
    assert any("checks passed" in line for line in stored)  # the verdict artifact was stored with the logs
    assert not leaked(small_faulty, console, stored)


def test_a_run_stopped_by_a_broken_quote_logs_no_value_of_the_row(small_clean, tmp_path):
    folder = tmp_path / "in"
    shutil.copytree(small_clean, folder)
    header, *rows = (folder / "pupils.csv").read_text(encoding="utf-8").rstrip("\n").split("\n")
    (folder / "pupils.csv").write_text("\n".join([header, *rows[:-1], rows[-1].replace(",", ',"', 1)]) + "\n")
    done, stored = debug_run(folder, tmp_path / "out", tmp_path / "prefect-home")
    console = done.stdout + done.stderr
    assert done.returncode == 2 and "Traceback" not in console
    assert f"error: pupils.csv: row {len(rows)}: a quoted field is never closed" in " ".join(console.split())
    assert not leaked(small_clean, console, stored)
