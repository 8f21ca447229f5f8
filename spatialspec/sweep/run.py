"""Run a sweep plan locally with N worker processes: runs already FINISHED in the MLflow store (matched by run key,
the MLflow run name) are skipped, a failed run does not stop the others, and the failures are reported at the end."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

__all__ = ["RunOutcome", "finished_run_keys", "run_plan"]


@dataclass
class RunOutcome:
    """What happened to one run of a plan: ``status`` is ``finished``, ``skipped`` or ``failed``."""

    key: str
    status: str
    returncode: int | None
    wall_s: float
    log: str | None


def finished_run_keys(tracking_uri: str | None, experiment_name: str) -> set[str]:
    """Names of the FINISHED runs of ``experiment_name`` at ``tracking_uri`` (empty without tracking). Creates the
    experiment if needed, so that concurrent runs never race to create the store."""
    if not tracking_uri:
        return set()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        client.create_experiment(experiment_name)
        return set()
    runs = client.search_runs([experiment.experiment_id], filter_string="attributes.status = 'FINISHED'",
                              max_results=50000)
    return {r.info.run_name for r in runs}


def _execute(run: dict[str, Any], log_dir: Path) -> RunOutcome:
    argv = [sys.executable if a == "python" and i == 0 else a for i, a in enumerate(run["argv"])]
    log = log_dir / f"{run['key']}.log"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    started = time.perf_counter()
    with open(log, "w") as out:
        rc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    return RunOutcome(run["key"], "finished" if rc == 0 else "failed", rc, time.perf_counter() - started, str(log))


def run_plan(plan: dict[str, Any], jobs: int = 1, log_dir: str | Path | None = None,
             progress: Callable[[RunOutcome], None] | None = None) -> list[RunOutcome]:
    """Run every entry of ``plan`` (see :func:`spatialspec.sweep.make_plan`) with ``jobs`` concurrent processes.

    Args:
        plan: the plan.
        jobs: concurrent runs (>= 1).
        log_dir: one ``<key>.log`` per run (default ``<plan out_dir>/logs``).
        progress: called with each outcome as it arrives.

    Returns:
        one outcome per run, in plan order.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    log_dir = Path(log_dir if log_dir is not None else Path(plan["out_dir"]) / "logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    done = finished_run_keys(plan.get("tracking_uri"), plan.get("experiment_name", ""))
    outcomes: dict[str, RunOutcome] = {}
    todo = []
    for run in plan["runs"]:
        if run["key"] in done:
            outcomes[run["key"]] = RunOutcome(run["key"], "skipped", None, 0.0, None)
            if progress is not None:
                progress(outcomes[run["key"]])
        else:
            todo.append(run)

    def work(run: dict[str, Any]) -> RunOutcome:
        try:
            outcome = _execute(run, log_dir)
        except OSError as e:
            outcome = RunOutcome(run["key"], "failed", None, 0.0, f"could not start: {e}")
        if progress is not None:
            progress(outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for outcome in pool.map(work, todo):
            outcomes[outcome.key] = outcome
    return [outcomes[run["key"]] for run in plan["runs"]]
