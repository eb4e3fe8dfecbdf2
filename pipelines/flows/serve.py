"""The schedule config as Prefect deployments, and serving them: `lareturns serve`.

Each deployment runs one return (pipelines.flows.returns.RETURNS), or a housekeeping flow such as the retention purge
(pipelines.flows.housekeeping.HOUSEKEEPING), on an RRule schedule in its timezone, with the input and output folders as
parameters. It passes no period: a scheduled run reports on the term of its own date
(schemas.calendar.current_term), so a yearly deployment reports 2026-autumn this year and 2027-autumn next.
An analyst can still run any deployment from the UI with other parameters, a period included.

Building the deployments needs no Prefect server; serving them registers them with the API at PREFECT_API_URL
and runs each when due, until stopped.
"""

from __future__ import annotations

from pathlib import Path

from prefect import Flow, get_client
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import RRule
from prefect.settings import get_current_settings
from prefect.utilities.importtools import import_object

from pipelines.flows.housekeeping import HOUSEKEEPING
from pipelines.flows.returns import RETURNS
from schemas.config import load_schedule
from schemas.specs.schedule import Deployment, Schedule, ScheduleError

FLOWS = RETURNS | HOUSEKEEPING


def load(config: Path | None = None) -> Schedule:
    """The schedule config, checked against the returns and housekeeping flows that exist."""
    return load_schedule(config, RETURNS, HOUSEKEEPING)


def flow_of(deployment: Deployment) -> Flow:
    return FLOWS[deployment.return_name]


def parameters(deployment: Deployment, root: Path) -> dict[str, str]:
    """The flow's parameters for a scheduled run: absolute folders under root, and no period."""
    input_dir, out = deployment.folders(root)
    return {"input_dir": str(input_dir), "out": str(out)}


def build_deployments(schedule: Schedule, root: Path) -> list[RunnerDeployment]:
    """One Prefect deployment per configured run; builds objects only (no API call)."""
    deployments = []
    for d in schedule.deployments:
        deployment = flow_of(d).to_deployment(
            name=d.name,
            schedules=[RRule(d.full_rrule, timezone=d.timezone)],
            parameters=parameters(d, root),
            description=d.description or None,
            tags=["lareturns", d.return_name, "housekeeping" if d.housekeeping else d.term],
            # The flow is found by module path, so serve works from any working directory.
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        _check_loadable(schedule, d, deployment)
        deployments.append(deployment)
    return deployments


def _check_loadable(schedule: Schedule, d: Deployment, deployment: RunnerDeployment) -> None:
    """Each run starts in a new process that imports the flow by its entrypoint (pipelines.flows.returns.<function>): a
    flow made inside a function has none, and every scheduled run of it would crash. Refuse it now instead."""
    try:
        loaded = import_object(deployment.entrypoint)
    except (ImportError, AttributeError, ValueError):
        loaded = None
    if loaded is not flow_of(d):
        raise ScheduleError(f"{schedule.path}: deployments.{d.name}.{'flow' if d.housekeeping else 'return'}: the "
                            f"{flow_of(d).name} flow cannot be loaded as {deployment.entrypoint}, so Prefect could not "
                            "run it; define it at module level under its function's name")


class ServeError(RuntimeError):
    """No Prefect API to serve against; the message is one line saying what to do."""


def check_api() -> str:
    """The Prefect API that serve registers with (PREFECT_API_URL, from the environment or the Prefect profile),
    checked to answer. Without one, Prefect would serve against a throwaway server that the UI never sees."""
    url = get_current_settings().api.url
    if not url:
        raise ServeError("PREFECT_API_URL is not set: run `make ui`, then PREFECT_API_URL=http://127.0.0.1:4200/api")
    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        raise ServeError(f"no Prefect API answers at {url} ({type(problem).__name__}): is `make ui` running?")
    return url


def serve(deployments: list[RunnerDeployment]) -> None:
    """Register the deployments and run them when due; returns when stopped (Ctrl-C), pausing their schedules."""
    from prefect import serve as prefect_serve

    prefect_serve(*deployments)
