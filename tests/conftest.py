"""Shared synthetic data: generated once per test session, small except for one full county."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

# Prefect quiet and offline, and no hashing of frames for its task cache, however pytest is started.
os.environ.setdefault("LARETURNS_LEDGER_KEY", secrets.token_hex(32))  # the session's ledger signing key
for _name, _value in (("PREFECT_SERVER_ANALYTICS_ENABLED", "false"), ("DO_NOT_TRACK", "1"),
                      ("PREFECT_TASKS_DEFAULT_NO_CACHE", "true"), ("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")):
    os.environ.setdefault(_name, _value)

import polars as pl  # noqa: E402
import pytest  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from pipelines.flows.returns import census_return
from pipelines.synthetic.generate import generate

PEOPLE = ("pupils", "early_years", "destinations", "ncmp")
IDENTIFIER_COLUMNS = ("upn", "uln", "postcode", "email", "phone", "date_of_birth", "address_line1", "parent_ni_number",
                      "parent_nass_number", "parent_name")


def input_identifiers(folder: Path) -> dict[str, set[str]]:
    """Every direct identifier in the exports, by kind, as text (full names as "Forename Surname")."""
    found: dict[str, set[str]] = {}
    for dataset in PEOPLE:
        frame = read_export(folder, dataset)
        for column in (c for c in IDENTIFIER_COLUMNS if c in frame.columns):
            found.setdefault(column, set()).update(frame[column].drop_nulls())
        found.setdefault("full_name", set()).update(frame.select(pl.concat_str("forename", pl.lit(" "), "surname")).to_series())
    return found


def read_export(folder: Path, name: str) -> pl.DataFrame:
    """An export as the files hold it: every column text, empty cells null."""
    return pl.read_csv(folder / f"{name}.csv", infer_schema=False)


@pytest.fixture(scope="session")
def county(tmp_path_factory) -> Path:
    """A full-size county (about 100,000 pupils), fault-free."""
    folder = tmp_path_factory.mktemp("county")
    generate(folder, seed=1, scale="county")
    return folder


@pytest.fixture(scope="session")
def small_clean(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("small_clean")
    generate(folder, seed=7, scale="6000")
    return folder


@pytest.fixture(scope="session")
def small_faulty(tmp_path_factory) -> Path:
    """The same county as small_clean, with one row in twenty given a fault."""
    folder = tmp_path_factory.mktemp("small_faulty")
    generate(folder, seed=7, scale="6000", fault_rate=0.05)
    return folder


@pytest.fixture(scope="session")
def validated_run(small_faulty, tmp_path_factory) -> Path:
    """`lareturns validate` on small_faulty: the run folder (validation.json, quarantine, Data Docs)."""
    from typer.testing import CliRunner

    from pipelines.cli import app

    out = tmp_path_factory.mktemp("validated")
    result = CliRunner().invoke(app, ["validate", "--input", str(small_faulty), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server for the session: it takes 15-30 s to start."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def health_key() -> bytes:
    """The health body's pseudonymisation key for the session, from the environment as in production."""
    key = secrets.token_bytes(32)
    os.environ["LARETURNS_KEY_HEALTH"] = key.hex()
    return key


@pytest.fixture(scope="session")
def ledger_public_key(tmp_path_factory) -> Path:
    """The auditor's copy of the session's ledger public key."""
    from pipelines.store.keys import ledger_public_key_pem

    path = tmp_path_factory.mktemp("keys") / "ledger_public_key.pem"
    path.write_text(ledger_public_key_pem())
    return path


@pytest.fixture(scope="session")
def census_run(prefect_harness, health_key, small_clean, tmp_path_factory) -> tuple[Path, dict]:
    """One real census_return run on the small county: its out folder and the flow's result."""
    out = tmp_path_factory.mktemp("census")
    return out, census_return(small_clean, out, "2026-spring")
