"""Headless Chromium (Debian's `chromium` package) for the tests that look at pages as their readers do."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import zlib
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


def page_requests(net_log: dict) -> list[str]:
    """The addresses a page asked the network for, from Chromium's net log (--log-net-log). Chromium's own
    background requests (update check, accounts, spell-check dictionary) have no initiating origin; a request made
    for a file page has its opaque origin ("null") as initiator and the file site for cookies. Files the page loads
    from disk go past the network stack and are not in the log."""
    events = {value: name for name, value in net_log["constants"]["logEventTypes"].items()}
    requests = [event["params"] for event in net_log["events"]  # the job's start: its end event has no url
                if events[event["type"]] == "URL_REQUEST_START_JOB" and "url" in event.get("params", {})]
    return [r["url"] for r in requests if r.get("initiator") != "not an origin"
            or "file://" in r.get("site_for_cookies", "")]


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the RGB(A) bytes of each row of an 8-bit, non-interlaced PNG (what Chromium writes),
    decoded with the standard library: enough to ask whether a colour is on the screen."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, compressed = 8, bytearray()
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            compressed += body
        position += 12 + length
    assert depth == 8 and colour in (2, 6) and interlace == 0, "not an 8-bit RGB(A) PNG"
    step = 3 if colour == 2 else 4
    stride, raw = width * step, zlib.decompress(bytes(compressed))
    rows, above = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride) if kind else ():
            left = line[i - step] if i >= step else 0
            up, corner = above[i], above[i - step] if i >= step else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            else:
                guess = left + up - corner
                near = min((abs(guess - left), 0, left), (abs(guess - up), 1, up), (abs(guess - corner), 2, corner))
                line[i] = (line[i] + near[2]) & 255
        rows.append(bytes(line))
        above = line
    return width, height, rows
