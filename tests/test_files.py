"""What a run leaves on disk keeps the secret: owner-only files, whatever the umask."""

from __future__ import annotations

import grp
import os
import subprocess
import sys

import pytest

from schemas.config import AccessError, load_access_group


def modes(root) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mode & 0o7777 for p in [root, *root.rglob("*")]}


def test_every_file_and_folder_a_run_leaves_is_readable_by_its_owner_alone(census_run):
    """The warehouse, quarantine files, decision records, kept counts, deliveries (record-level and statistics),
    the report and its evidence, the ledger: the run set its own umask, so none is readable by another user."""
    out, _ = census_run
    found = modes(out)
    assert {"02_warehouse/warehouse.duckdb", "01_validated/quarantine", "ledger.jsonl", "05_report/auditor_evidence.json",
            "04_deliveries/youth_support/youth_support.csv"} <= set(found)
    assert [name for name in found if name.startswith("06_history/counts/")]
    assert {name: oct(mode) for name, mode in found.items() if mode & 0o077} == {}


def test_files_are_owner_only_however_permissive_the_umask(tmp_path):
    """Started from a shell with umask 000, lareturns validate still leaves nothing another user can read."""
    from pipelines.synthetic.generate import generate

    generate(tmp_path / "in", seed=3, scale="1000")
    script = ("import os, sys; os.umask(0); from pipelines.cli import app; "
              "sys.argv = ['lareturns', 'validate', '--input', sys.argv[1], '--out', sys.argv[2]]; app()")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "in"), str(tmp_path / "out")], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    found = modes(tmp_path / "out")
    assert "02_warehouse/warehouse.duckdb" in found and any(n.startswith("quarantine/") for n in found)
    assert {name: oct(mode) for name, mode in found.items() if mode & 0o077} == {}


def test_a_group_named_in_config_may_read_and_no_one_else(tmp_path):
    group = grp.getgrgid(os.getgid()).gr_name
    script = ("import sys; from pathlib import Path; from outputs.files import restrict_new_files, write_text_atomic; "
              "root = Path(sys.argv[1]); restrict_new_files(root, sys.argv[2]); "
              "write_text_atomic(root / 'a' / 'b.csv', 'x')")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "run"), group], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    found = modes(tmp_path / "run")
    assert found["."] == 0o2750 and found["a"] & 0o777 == 0o750 and found["a/b.csv"] == 0o640
    assert (tmp_path / "run" / "a" / "b.csv").group() == group


def test_an_access_policy_naming_no_group_of_this_machine_is_refused(tmp_path):
    (tmp_path / "access.toml").write_text('group = "no-such-group-here"\n')
    with pytest.raises(AccessError, match=r"access.toml: access.group: there is no group 'no-such-group-here'"):
        load_access_group(tmp_path / "access.toml")
    (tmp_path / "access.toml").write_text('groups = "staff"\n')
    with pytest.raises(AccessError, match=r"access.toml: access.groups: unknown key"):
        load_access_group(tmp_path / "access.toml")
