"""Where things live, checked: every path in the catalog, every file written by the one writer, SQL only in the
warehouse module, Prefect only in the modules that run flows or talk to its API, flows that only wire, and a
disclosure-control library that touches no store and no file."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipelines", "outputs", "disclosure_control", "schemas")
PREFECT_MODULES = {
    "pipelines/flows/returns.py": "the returns' flows and tasks",
    "pipelines/flows/housekeeping.py": "the retention purge's flow",
    "pipelines/flows/national.py": "the national run's flow, one task per LA on Dask",
    "pipelines/flows/serve.py": "deployments and their schedules",
    "pipelines/flows/prefect_api.py": "the API a run reports to, Prefect's log handlers and progress lines",
    "pipelines/store/keys.py": "keys kept as Prefect Secret blocks",
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
    elsewhere = {path for path, text in sources(*PACKAGES).items() if SQL.search(text) and path != "pipelines/store/warehouse.py"}
    assert not elsewhere


def test_prefect_is_imported_only_where_flows_run_or_its_api_is_used():
    assert {path for path, text in sources(*PACKAGES).items() if "prefect" in imported(text)} == set(PREFECT_MODULES)


def project_modules(text: str) -> set[str]:
    """The project's modules a source imports, by full name."""
    found = set()
    for node in ast.walk(ast.parse(text)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
        found |= {n for n in names if n.split(".")[0] in PACKAGES}
    return found


def test_the_disclosure_control_library_touches_no_store_and_no_file():
    for path, text in sources("disclosure_control").items():
        assert not imported(text) & {"pipelines", "prefect", "duckdb", "great_expectations", "outputs"}, path
        assert project_modules(text) <= {"schemas.keys"}, path  # of the app, only the dependency-free key check
        assert not re.search(r"\bopen\(|\.write_(csv|parquet|text|bytes)\(|\.read_(csv|parquet|text|bytes)\(", text), path


def test_the_one_key_check_imports_nothing_of_the_project():
    assert not project_modules((ROOT / "schemas/keys.py").read_text(encoding="utf-8"))


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


PATH_LITERAL = re.compile(r"""/ f?["'][^"']+["']|Path\(__file__\)|__file__""")
PATH_HOME = "schemas/catalog.py"
WRITER = "outputs/files.py"


def test_every_path_is_named_in_the_catalog():
    """Config files, spec folders, the run folder's stages and the files in them are named in schemas/catalog.py
    alone: a path joined from a literal anywhere else is a second home for it. The generator is left out: it
    writes a made-up council's landing folder (its exports, as an MIS names them) from its own package data; so is
    the writer's name for its hidden staging folder."""
    found = {path: [n for n, line in enumerate(text.splitlines(), 1) if PATH_LITERAL.search(line.split("#")[0])
                    and "separator=" not in line and "' / '" not in line and '" / "' not in line]
             for path, text in sources("pipelines", "outputs", "schemas").items()
             if path not in (PATH_HOME, WRITER) and not path.startswith("pipelines/synthetic/")}
    assert not {path: lines for path, lines in found.items() if lines}


def test_the_run_folder_shows_its_stages_in_order():
    from schemas.catalog import RunPaths

    paths = RunPaths(Path("run"))
    stages = [paths.validated, paths.warehouse.parent, paths.protected, paths.deliveries, paths.report,
              paths.releases.parent]
    assert [p.name for p in stages] == ["01_validated", "02_warehouse", "03_protected", "04_deliveries", "05_report",
                                        "06_history"]


WRITES = re.compile(r"\.write_(text|bytes|csv|parquet|excel|ipc)\(|\bos\.(replace|rename|open)\(|shutil\.(copy\w*|move)\("
                    r"|\bopen\([^)]*[\"'][wax]b?[\"']|\.open\([\"'][wax]b?[\"']")


def test_every_file_is_written_by_the_one_writer():
    """Atomic writes, staged folders, owner-only modes and hashing live in outputs/files.py; a file written any
    other way could be left half-written by a crash, or readable by others."""
    found = {path for path, text in sources(*PACKAGES).items() if path != WRITER and WRITES.search(text)}
    assert not found


def test_every_task_declares_by_catalog_name_what_it_reads_and_writes():
    from prefect import Task

    import pipelines.flows.returns as returns
    from schemas.catalog import OUTSIDE, RunPaths

    names = {n for n in vars(RunPaths) if not n.startswith("_")} | set(OUTSIDE)
    tasks = [t for t in vars(returns).values() if isinstance(t, Task)]
    assert len(tasks) >= 12
    for t in tasks:
        reads, writes = returns.STAGES[t.name]
        assert reads and set(reads) | set(writes) <= names, (t.name, reads, writes)
        assert t.description.endswith(f"Reads: {', '.join(reads)}. Writes: {', '.join(writes) or 'nothing'}.")
        assert not t.tags  # every tag costs each task run a round trip to the API for a concurrency slot


def test_the_returns_flows_only_wire():
    """No document is built and no SQL run in the flow module: its tasks hand what they read to the nodes and the
    writers, and the report and manifests are built where they are written (outputs/)."""
    text = (ROOT / "pipelines/flows/returns.py").read_text(encoding="utf-8")
    functions = [f for f in ast.walk(ast.parse(text)) if isinstance(f, ast.FunctionDef)]
    documents = [node.lineno for f in functions for node in ast.walk(f) if isinstance(node, ast.Dict)
                 and any(isinstance(key, ast.Constant) for key in node.keys)]
    assert not documents and not SQL.search(text)
