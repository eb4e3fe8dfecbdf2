"""The whole country: one census flow per LA, fanned out on a Dask cluster through Prefect's Dask task runner.

Each LA's exports are a folder of their own and each LA's run a run folder of its own (warehouse, ledger,
deliveries, report), so an LA's task shares nothing with another's but the file system: it is given paths and
returns a small summary, and a worker may be any machine that sees both folders and the Prefect API. An LA whose
run fails is retried once, then reported, as is an LA whose worker died; the other LAs run on regardless, and a
rerun naming only the failed LAs (`lareturns run-national --la`) leaves the others' folders as they are.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import time
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect_dask import DaskTaskRunner

from pipelines.flows.prefect_api import without_tracebacks
from pipelines.flows.returns import RUN_ERRORS
from schemas.catalog import NationalPaths

RETRIES = 1  # a failed LA runs once more before it is reported


def task_runner(workers: int, cluster: str | None, api_url: str) -> DaskTaskRunner:
    """The Dask cluster at `cluster` (a scheduler address, whose workers must have PREFECT_API_URL set to a Prefect
    server they can reach), or a local cluster of `workers` processes of one thread each, told this run's API."""
    logging.getLogger("distributed").setLevel(logging.WARNING)  # the scheduler's chatter, in this process
    if cluster:
        return DaskTaskRunner(address=cluster)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": ":0", "silence_logs": logging.WARNING,
                                          "env": {"PREFECT_API_URL": api_url}})


def failure_line(error: BaseException) -> str:
    """What a report may say of a failed LA: lareturns' own errors name the file, row and rule and never a value;
    anything else only by its kind (its message could quote a row), with the LA's Prefect logs for the rest."""
    if isinstance(error, RUN_ERRORS):
        return str(error)
    return f"{type(error).__name__} (see the LA's flow run in Prefect)"


@task(retries=RETRIES, cache_policy=NO_CACHE, task_run_name="census {la}")
def la_census(la: str, inputs: Path, out: Path, period: str, policy_file: Path | None, known_dir: Path | None) -> dict:
    from pipelines.flows.returns import census_return  # imported in the worker, where its flow is defined

    without_tracebacks()  # in this worker's process, as in the command's
    started = time.perf_counter()
    result = census_return(inputs, out, period, policy_file, known_dir)
    return {"la": la, "run_id": result["run_id"], "audit_passed": result["audit_passed"],
            "publications": len(result["publications"]), "ledger_hash": result["ledger_hash"],
            "seconds": round(time.perf_counter() - started, 1), "worker": f"{socket.gethostname()}:{os.getpid()}",
            "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


@flow(name="national_census")
def national_census(inputs: Path, out: Path, period: str, las: list[str], policy_file: Path | None = None,
                    known_dir: Path | None = None) -> dict:
    """Every LA's census (one per local worker at a time); the LAs that failed are listed, not raised, so that one
    LA's bad exports do not hide the others' results."""
    paths = NationalPaths(Path(inputs), Path(out))
    futures = {la: la_census.submit(la, paths.la_input(la), paths.la_run(la), period, policy_file, known_dir)
               for la in las}
    done, failed = [], []
    for la, future in futures.items():
        try:  # a worker that died (out of memory, say) raises here, whatever raise_on_failure says
            outcome = future.result(raise_on_failure=False)
        except Exception as error:  # noqa: BLE001 - reported for this LA, the others' results kept
            outcome = error
        if isinstance(outcome, BaseException):
            failed.append({"la": la, "error": failure_line(outcome)})
        else:
            done.append(outcome)
    return {"period": period, "las": done, "failed": failed}


def national_summary(earlier: dict | None, result: dict) -> dict:
    """The national summary after a run: each LA's latest outcome, so that a rerun of the failed LAs completes the
    summary of the run before it instead of replacing it."""
    rerun = {item["la"] for item in result["las"]} | {item["la"] for item in result["failed"]}
    kept = earlier if earlier and earlier.get("period") == result["period"] else {"las": [], "failed": []}
    las = [item for item in kept["las"] if item["la"] not in rerun] + result["las"]
    failed = [item for item in kept["failed"] if item["la"] not in rerun] + result["failed"]
    return {"period": result["period"], "las": sorted(las, key=lambda item: item["la"]),
            "failed": sorted(failed, key=lambda item: item["la"])}
