"""What an analyst sees of a run in Prefect's UI: a real Prefect server with its UI (as `make ui` starts it), a
return run against it from the command line, and the run's artifacts rendered by headless Chromium.

The server is started here on a free port with a Prefect home of its own, so its database holds this run only. Its
pages are a JavaScript application that asks the API for the artifact: the DOM is read after Chromium's virtual
time has let those requests finish. The screenshots are kept in out/test-screenshots/ for a person to look at."""

from __future__ import annotations

import html
import json
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.chromium import HEIGHT, SCREENSHOTS, WIDTH, needs_chromium, run_chromium

pytestmark = needs_chromium

STARTUP = 240  # seconds for `prefect server start` to answer: 10-30 s here, more on a busy 2-core CI machine
RENDER_MS = 20_000  # Chromium's virtual time for the UI's requests to the API (real time is far less)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def quiet_env(home: Path) -> dict[str, str]:
    return os.environ | {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                         "PREFECT_TASKS_DEFAULT_NO_CACHE": "true", "COLUMNS": "200"}


@pytest.fixture(scope="module")
def prefect_ui(tmp_path_factory):
    """A Prefect server with its UI; yields its address. Stopped with its process group at the end."""
    home, port = tmp_path_factory.mktemp("prefect-ui-home"), free_port()
    url = f"http://127.0.0.1:{port}"
    env = quiet_env(home) | {"PREFECT_UI_API_URL": f"{url}/api"}  # the page's own API address (default :4200)
    env.pop("PREFECT_API_URL", None)
    server = subprocess.Popen([str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP
        while not answers(f"{url}/api/health"):
            assert server.poll() is None, "prefect server start exited"
            assert time.monotonic() < deadline, f"prefect server did not answer within {STARTUP} s"
            time.sleep(0.5)
        yield url, home
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def health_run(prefect_ui, health_key, small_clean, tmp_path_factory) -> tuple[str, Path, dict]:
    """`lareturns run health` as an analyst starts it, reporting to the server above; the server, the run folder
    and the run's artifacts by key (from the API the UI reads)."""
    url, home = prefect_ui
    out = tmp_path_factory.mktemp("health-run")
    code, shown = on_a_terminal([sys.executable, "-c", "from pipelines.cli import app; app()", "run", "health",
                                 "--input", str(small_clean), "--out", str(out), "--period", "2026-spring"],
                                quiet_env(home) | {"PREFECT_API_URL": f"{url}/api", "COLUMNS": "200", "TERM": "xterm"})
    assert code == 0, shown[-3000:]
    found = httpx.post(f"{url}/api/artifacts/filter", json={}, timeout=30).json()
    return url, out, {a["key"]: a for a in found}, shown


def on_a_terminal(command: list[str], env: dict[str, str], timeout: float = 600) -> tuple[int, str]:
    """The command run on a pseudo-terminal, as an analyst's shell runs it (rich draws its live progress only on
    one): its exit code and everything it drew, escape sequences taken out and each redraw on a line of its own."""
    main, side = pty.openpty()
    process = subprocess.Popen(command, env=env, stdin=side, stdout=side, stderr=side, start_new_session=True)
    os.close(side)
    drawn = bytearray()
    reader = threading.Thread(target=lambda: drawn.extend(iter_read(main)), daemon=True)
    reader.start()
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    reader.join(timeout=30)
    os.close(main)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn.decode("utf-8", "replace"))
    return code, text.replace("\r", "\n")


def iter_read(fd: int):
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the other side closed: the command has ended
            return
        if not chunk:
            return
        yield from chunk


def rendered_text(url: str, work: Path) -> str:
    """The page's text after the UI has fetched and drawn it."""
    dom = run_chromium(f"--virtual-time-budget={RENDER_MS}", "--dump-dom", url, user_data_dir=work / "profile").stdout
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())


def screenshot(url: str, name: str, work: Path) -> bytes:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"{name}.png"
    run_chromium(f"--virtual-time-budget={RENDER_MS}", f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}",
                 "--hide-scrollbars", url, user_data_dir=work / "profile")
    return shot.read_bytes()


def test_the_command_shows_a_bar_per_step_with_the_counts_of_each_part(health_run):
    """What `make run` shows while it works: validation moves export by export, then the Great Expectations
    suites; protection problem by problem, each with its counts."""
    _, out, _, shown = health_run
    bars = {}
    for line in shown.split("\n"):
        found = re.search(r"(validation|protection) +[━╸╺]+ +(\d+)/(\d+) +\d+:\d\d:\d\d (.+?) *$", line)
        if found:
            bars.setdefault(found[1], []).append((int(found[2]), int(found[3]), found[4]))
    validation = json.loads((out / "01_validated" / "validation.json").read_text())["datasets"]
    parts = len(validation) + 1
    seen = [text for _, _, text in bars["validation"]]
    for d in validation:
        assert any(text.startswith(f"{d['dataset']}: {d['rows_read']:,} rows read, {d['rows_quarantined']:,} quarantined")
                   for _, _, text in bars["validation"]), (d["dataset"], seen)
    assert bars["validation"][-1] == (parts, parts, f"Great Expectations: {parts - 1} of {parts - 1} suites passed")
    assert bars["protection"][-1][:2] == (1, 1)
    counted = re.match(r"ncmp_prevalence: ([\d,]+) cells, ([\d,]+) primary, ([\d,]+) secondary", bars["protection"][-1][2])
    summary = re.search(r"│ ncmp_prevalence +│ health +│ +([\d,]+) │ +([\d,]+) │ +([\d,]+) │ passed", shown)
    assert counted and summary and counted.groups() == summary.groups()  # the bar's counts are the run's


def test_the_runs_artifacts_reconcile_with_its_files(health_run):
    _, out, artifacts, _ = health_run
    assert set(artifacts) == {f"health-return-{k}" for k in ("datasets", "publications", "deliveries", "checks", "verdict")}
    datasets = json.loads(artifacts["health-return-datasets"]["data"])
    validation = json.loads((out / "01_validated" / "validation.json").read_text())["datasets"]
    assert [(r["dataset"], r["rows read"], r["quarantined"]) for r in datasets] == [
        (d["dataset"], d["rows_read"], d["rows_quarantined"]) for d in validation]
    publications = json.loads(artifacts["health-return-publications"]["data"])
    assert [p["publication"] for p in publications] == ["ncmp_prevalence"]
    deliveries = {d["recipient"]: d for d in json.loads(artifacts["health-return-deliveries"]["data"])}
    assert set(deliveries) == {"health"}
    assert deliveries["health"]["files"] == len(json.loads((out / "04_deliveries/health/manifest.json").read_text())["files"])


@pytest.mark.parametrize("kind", ["datasets", "publications", "deliveries", "checks"])
def test_each_table_artifact_shows_in_the_ui_with_every_figure(health_run, kind, tmp_path):
    """Every column and every cell of the table, as the UI draws it (numbers as the UI writes them, without
    separators), and a screenshot that is not blank."""
    url, _, artifacts, _ = health_run
    artifact = artifacts[f"health-return-{kind}"]
    page = f"{url}/artifacts/artifact/{artifact['id']}"
    text = rendered_text(page, tmp_path)
    rows = json.loads(artifact["data"])
    assert "Can't connect" not in text and artifact["description"] in text
    for row in rows:
        for column, value in row.items():
            assert column in text and str(value) in text, (column, value)
    shot = screenshot(page, f"prefect-ui-{kind}", tmp_path)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 35_000


def test_the_verdict_shows_in_the_ui(health_run, tmp_path):
    url, out, artifacts, _ = health_run
    verdict = artifacts["health-return-verdict"]
    page = f"{url}/artifacts/artifact/{verdict['id']}"
    text = rendered_text(page, tmp_path)
    checks = json.loads(artifacts["health-return-checks"]["data"])
    assert f"Delivered: all {len(checks)} checks passed" in text
    assert str(out / "05_report" / "auditor_report.html") in text
    validation = json.loads((out / "01_validated" / "validation.json").read_text())["datasets"]
    assert f"Validation: {sum(d['rows_read'] for d in validation):,} rows read" in text
    screenshot(page, "prefect-ui-verdict", tmp_path)
