"""Headless Chromium (Debian's `chromium` package) for the tests that look at pages as their readers do."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# A module-level skip (pytestmark = needs_chromium), so that without a browser no flow run is started for nothing.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no headless browser: neither `chromium` nor `chromium-browser` is on PATH "
                             "(on Debian: apt-get install chromium; .ci/run installs it)")

TIMEOUT = 60  # seconds per browser launch; one takes under a second here, a page of Prefect's UI 2-3 s
WIDTH, HEIGHT = 1280, 900
SCREENSHOTS = Path(__file__).resolve().parents[1] / "out" / "test-screenshots"  # kept for a person to look at


def run_chromium(*args: str, user_data_dir: Path) -> subprocess.CompletedProcess:
    """One headless launch; on timeout the whole process group (browser, zygote, renderers) is killed."""
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={user_data_dir}", *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8",
                          errors="replace", start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            pytest.fail(f"chromium did not finish within {TIMEOUT} s: {' '.join(command)}")
    assert process.returncode == 0, f"chromium exited {process.returncode}:\n{stderr[-3000:]}"
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
