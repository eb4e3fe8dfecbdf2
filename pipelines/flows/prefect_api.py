"""The Prefect API a command's flows report to, and what Prefect's logs may say and carry.

The API is the one configured (PREFECT_API_URL, from the environment or the Prefect profile), or a temporary one
this process starts and stops. Prefect would start a temporary server of its own, but as a process that outlives a
run killed with kill -9 (it stays behind, holding a port and the database). The one started here is the same
server (Prefect's API app under uvicorn, without the UI), in a child that the system kills when this process dies,
however it dies.

Prefect logs a failed task or flow with its traceback, to the console and to its API's log store. A traceback
is no message for an analyst, and the values in its frames' exceptions can come from a row; the log keeps the
exception's name and message (lareturns' own errors name the file, row and rule, never the content).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

PR_SET_PDEATHSIG = 1  # linux/prctl.h
PROGRESS = "progress"  # the log record attribute holding (step, done, total) of a progress line


def logged_progress(step: str) -> Callable[[str, int, int], None]:
    """Counts as each part of a step is done, as run log lines carrying (step, done, total) in their PROGRESS
    attribute: the Prefect UI shows the line, the command's progress bars (pipelines/cli.py) move on it."""
    from prefect import get_run_logger

    logger = get_run_logger()
    return lambda text, done, total: logger.info(text, extra={PROGRESS: (step, done, total)})


class ApiUnavailable(RuntimeError):
    """No Prefect API could be started; the message says what to do."""


def _dying_with(parent: int):
    """For the child, before it runs the server: Linux sends it SIGKILL when its parent dies; a parent that died
    before that was set (the child's parent is then another process) ends the child at once."""
    def setup() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)
    return setup


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class _NoTraceback(logging.Filter):
    """Prefect's messages already name the exception ("Task run failed with exception: FileProblem(...)")."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def without_tracebacks() -> None:
    """Every handler of Prefect's loggers logs an exception as one line, never its traceback."""
    import prefect.logging  # noqa: F401 - configures Prefect's loggers and their handlers

    names = ["prefect", *(n for n in logging.root.manager.loggerDict if n.startswith("prefect."))]
    for handler in {h for name in names for h in logging.getLogger(name).handlers} | set(logging.root.handlers):
        if not any(isinstance(f, _NoTraceback) for f in handler.filters):
            handler.addFilter(_NoTraceback())


def _drained() -> None:
    """Prefect's log and event workers emptied while the server still answers: stopped first, they would retry
    against it for a minute at exit."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    with contextlib.suppress(RuntimeError):  # no log worker was started
        APILogWorker.instance().drain()
    EventsWorker.drain_all()


def configured_api_url() -> str | None:
    """The API named by PREFECT_API_URL or the Prefect profile; None when a run would start a temporary one."""
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


@contextlib.contextmanager
def prefect_api(meanwhile: Callable[[], None] = lambda: None) -> Iterator[str]:
    """The configured API, or a temporary server for the block (given PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS
    to answer); yields its URL. `meanwhile` runs while the server starts: the imports a run needs take about as
    long as the start, and the server is another process, so on two cores the two overlap."""
    import prefect
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    settings = get_current_settings()
    if configured := configured_api_url():
        meanwhile()
        yield configured
        return
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent), "--factory",
         "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "error",
         "--lifespan", "on"],
        env=os.environ | {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        | settings.to_environment_variables(exclude_unset=True),
        # a session of its own, so that Ctrl-C in the terminal reaches this process only: it drains Prefect's log
        # workers into the server, then stops it
        preexec_fn=_dying_with(os.getpid()), start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + settings.server.ephemeral.startup_timeout_seconds
        meanwhile()
        while not _answers(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise ApiUnavailable(
                    f"the temporary Prefect server did not start within "
                    f"{settings.server.ephemeral.startup_timeout_seconds} s: set "
                    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS higher, or run `make ui` and set "
                    "PREFECT_API_URL=http://127.0.0.1:4200/api")
            time.sleep(0.1)
        with temporary_settings(updates={PREFECT_API_URL: url}):
            try:
                yield url
            finally:
                _drained()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
