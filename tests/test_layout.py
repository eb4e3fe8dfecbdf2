"""Where things live, checked: SQL only in the warehouse module, Prefect only in the modules that run flows or
talk to its API, and a disclosure-control library that touches no store and no file."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipelines", "outputs", "disclosure_control", "schemas")
PREFECT_MODULES = {
    "pipelines/flows.py": "the returns' flows and tasks",
    "pipelines/housekeeping.py": "the retention purge's flow",
    "pipelines/serve.py": "deployments and their schedules",
    "pipelines/prefect_api.py": "the API a run reports to, and Prefect's log handlers",
    "pipelines/keys.py": "keys kept as Prefect Secret blocks",
}
SQL = re.compile(r"\.(execute|sql|register)\(|duckdb\.connect\(")


def sources(*packages: str) -> dict[str, str]:
    return {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8")
            for package in packages for p in sorted((ROOT / package).rglob("*.py"))}


def imported(text: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_every_sql_statement_is_in_the_warehouse_module():
    elsewhere = {path for path, text in sources(*PACKAGES).items() if SQL.search(text) and path != "pipelines/warehouse.py"}
    assert not elsewhere


def test_prefect_is_imported_only_where_flows_run_or_its_api_is_used():
    assert {path for path, text in sources(*PACKAGES).items() if "prefect" in imported(text)} == set(PREFECT_MODULES)


def test_the_disclosure_control_library_touches_no_store_and_no_file():
    for path, text in sources("disclosure_control").items():
        assert not imported(text) & {"pipelines", "prefect", "duckdb", "great_expectations", "outputs"}, path
        assert not re.search(r"\bopen\(|\.write_(csv|parquet|text|bytes)\(|\.read_(csv|parquet|text|bytes)\(", text), path


def status_literals(text: str) -> list[int]:
    """Lines where a status is written as a bare string: compared with, or given to lit() or is_in()."""
    from disclosure_control.status import STATUSES

    names = {s.value for s in STATUSES}
    lines = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("lit", "is_in"):
            operands = [a for arg in node.args for a in ([arg, *arg.elts] if isinstance(arg, ast.List | ast.Tuple) else [arg])]
        else:
            continue
        lines += [o.lineno for o in operands if isinstance(o, ast.Constant) and o.value in names]
    return lines


def test_cell_statuses_are_named_by_the_one_vocabulary():
    found = {path: lines for path, text in sources(*PACKAGES).items()
             if not path.startswith("pipelines/synthetic/")  # school kinds, not statuses
             and (lines := status_literals(text))}
    assert not found


RUN_FOLDER_NAMES = re.compile(r'/ "(data|validated|deliveries|report|releases|quarantine|data_docs|work)"'
                              r'|"(ledger\.jsonl|validation\.json|warehouse\.duckdb)"')


def test_a_run_folders_layout_is_named_only_in_the_registry():
    """RunPaths and ValidationPaths (pipelines/registry.py) name every place in a run folder; the generator's
    own package data folder is not a run folder."""
    found = {path for path, text in sources("pipelines", "outputs").items()
             if path not in ("pipelines/registry.py", "pipelines/synthetic/plan.py") and RUN_FOLDER_NAMES.search(text)}
    assert not found
