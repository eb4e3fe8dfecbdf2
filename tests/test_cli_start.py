"""The command starts with what it uses: `--help` imports no data library, `protect` none of the pipeline's
heavy ones (Prefect, Great Expectations, DuckDB, the growth reference). Import lists, not timings."""

from __future__ import annotations

import json
import re
import subprocess
import sys

HEAVY = ("prefect", "great_expectations", "duckdb", "rcpchgrowth", "scipy.stats", "polars", "highspy", "numpy")


def imported_by(args: list[str]) -> set[str]:
    """The heavy top-level packages loaded by running `lareturns ARGS` in a fresh interpreter."""
    script = ("import json, sys\nfrom pipelines.cli import app\nsys.argv = ['lareturns', *json.loads(sys.argv[1])]\n"
              "try:\n    app()\nexcept SystemExit:\n    pass\n"
              f"print(json.dumps(sorted(m for m in sys.modules if m in {HEAVY!r})))")
    done = subprocess.run([sys.executable, "-c", script, json.dumps(args)], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_help_imports_no_data_library():
    assert imported_by(["--help"]) == set()
    assert imported_by(["protect", "--help"]) == set()
    assert imported_by(["run", "--help"]) == set()


def test_protect_imports_the_engine_and_nothing_of_the_pipeline(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("school,sex\nA,F\nA,M\nB,F\n")
    used = imported_by(["protect", str(table), "--dims", "school,sex", "--out", str(tmp_path / "out.csv")])
    assert (tmp_path / "out.csv").exists()
    assert {"polars", "highspy"} <= used and not used & {"prefect", "great_expectations", "duckdb", "rcpchgrowth", "scipy.stats"}


def test_the_command_sets_its_own_prefect_settings_however_it_is_started():
    """Run outside make (from cron, a shell or a scheduler), the command still gives Prefect's temporary server
    time to start, sends no analytics and keeps no task cache."""
    import os

    names = ("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK",
             "PREFECT_TASKS_DEFAULT_NO_CACHE")
    env = {k: v for k, v in os.environ.items() if k not in names}
    script = f"import json, os\nimport pipelines.cli\nprint(json.dumps([os.environ[n] for n in {names!r}]))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["120", "false", "1", "true"]


def test_a_missing_input_folder_is_answered_before_prefect_is_imported(tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app

    args = ["run", "census", "--input", str(tmp_path / "absent"), "--out", str(tmp_path / "out")]
    assert not imported_by(args) & {"prefect", "great_expectations", "duckdb", "polars"}
    result = CliRunner().invoke(app, args)
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and said.startswith("error: --input ") and said.endswith("absent: no such folder")
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_every_commands_help_shows_flags_as_flags_one_placeholder_style_and_runnable_examples():
    """`--help` of each command: no "<bool>" after a flag, every value placeholder in <angle> style, and
    examples whose options are the command's own."""
    from typer.main import get_command
    from typer.testing import CliRunner

    from pipelines.cli import app

    commands = get_command(app).commands
    assert len(commands) == 11
    for name, command in commands.items():
        text = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "100"}).output
        assert "<bool>" not in text and "Examples:" in text, name
        options = {opt for param in command.params for opt in param.opts if opt.startswith("--")}
        examples = [line.strip() for line in text.split("Examples:")[1].splitlines() if f"lareturns {name}" in line]
        assert examples, name
        for example in examples:
            assert set(re.findall(r"(?<!\S)--[a-z-]+", example)) <= options, example
        placeholders = re.findall(r"^\s+--[a-z-]+ (\S+)", text.split("Examples:")[0], flags=re.M)
        assert all(p.startswith("<") and p.endswith(">") for p in placeholders), (name, placeholders)
