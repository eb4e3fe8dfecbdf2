"""No personal data in logs: the whole census run at DEBUG, its console output and every log line Prefect stored.

The run is a separate process, as an analyst starts it (`lareturns run`), with its own Prefect home so that its
log database can be read afterwards. Every logger is at DEBUG (Prefect's and the root logger, so DuckDB, Great
Expectations and HTTP libraries too), and the test looks for every direct identifier in the inputs.
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
import subprocess
import sys

from tests.conftest import input_identifiers

MAX_WORDS = 5  # the longest identifier in words ("Flat 3 19 Willow Grove" style first lines stay within it)


def phrases(text: str) -> set[str]:
    """Every run of 1 to MAX_WORDS words, stripped of the punctuation that logs wrap values in."""
    words = [w.strip("'\"`,;:()[]{}<>") for w in re.split(r"\s+", text)]
    return {" ".join(words[i:i + n]).upper() for n in range(1, MAX_WORDS + 1) for i in range(len(words) - n + 1)}


def test_phrases_find_an_identifier_inside_a_log_line():
    assert {"MOHAMMED AKHTAR", "LE6 1BZ", "N855200125001"} <= phrases("matched 'Mohammed Akhtar' (LE6 1BZ) to N855200125001,")


def test_a_debug_run_logs_no_direct_identifier(small_clean, tmp_path):
    home = tmp_path / "prefect-home"
    env = os.environ | {
        "PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "DEBUG", "PREFECT_LOGGING_ROOT_LEVEL": "DEBUG",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_TASKS_DEFAULT_NO_CACHE": "true",
        "LARETURNS_KEY_HEALTH": secrets.token_hex(32), "COLUMNS": "200",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # a busy 2-core CI machine starts it slowly
    }
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-c", "from pipelines.cli import app; app()", "run", "census", "--input",
                           str(small_clean), "--out", str(tmp_path / "out"), "--period", "2026-spring"],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    with sqlite3.connect(home / "prefect.db") as db:
        stored = [message for (message,) in db.execute("SELECT message FROM log")]
    console = done.stdout + done.stderr
    assert len(stored) > 50 and console.count("| DEBUG ") > 20  # DEBUG really was on, in the store and on screen
    seen = phrases(console) | phrases("\n".join(stored))
    for kind, values in input_identifiers(small_clean).items():
        leaked = {v.upper() for v in values} & seen
        assert not leaked, f"{len(leaked)} {kind} value(s) in the logs"
