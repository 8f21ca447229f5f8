"""Run a sweep file locally with N worker processes: runs already finished with the sweep's settings are skipped
(matched by run fingerprint, :mod:`spatialspec.identity`: a FINISHED MLflow run carrying it, or the run folder's
completed checkpoint), a failed run does not stop the others, and the failures are reported at the end. The Ray
engine (:mod:`spatialspec.sweep.ray_engine`) skips and runs entries with the same :func:`pending_runs` and
:func:`execute_run`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spatialspec._deprecated import moved_names

__all__ = ["RunOutcome", "finished_run_keys", "finished_fingerprints", "finished_in_folder", "entry_fingerprint",
           "pending_runs", "execute_run", "run_sweep"]

__getattr__ = moved_names(__name__, {"run_plan": "spatialspec.sweep.run.run_sweep"})


@dataclass
class RunOutcome:
    """What happened to one run of a sweep: ``status`` is ``finished``, ``skipped`` or ``failed``; ``reason`` says
    why a run failed without an exit status of its own (e.g. its Ray worker died more often than retried)."""

    key: str
    status: str
    returncode: int | None
    wall_s: float
    log: str | None
    reason: str | None = None


def finished_fingerprints(tracking_uri: str | None, experiment_name: str) -> dict[str, set[str]]:
    """The fingerprint digests of the FINISHED runs of ``experiment_name`` at ``tracking_uri``, by run name (empty
    without tracking). Creates the experiment if needed, so that concurrent runs never race to create the store."""
    if not tracking_uri:
        return {}
    from mlflow.tracking import MlflowClient

    from spatialspec.identity import FINGERPRINT_TAG

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        client.create_experiment(experiment_name)
        return {}
    runs = client.search_runs([experiment.experiment_id], filter_string="attributes.status = 'FINISHED'",
                              max_results=50000)
    found: dict[str, set[str]] = {}
    for r in runs:
        digest = r.data.tags.get(FINGERPRINT_TAG) or r.data.params.get("fingerprint")
        if digest:
            found.setdefault(r.info.run_name, set()).add(digest)
    return found


def finished_run_keys(tracking_uri: str | None, experiment_name: str) -> set[str]:
    """Names of the FINISHED runs of ``experiment_name`` at ``tracking_uri`` that carry a run fingerprint."""
    return set(finished_fingerprints(tracking_uri, experiment_name))


def entry_fingerprint(run: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint (:func:`spatialspec.identity.run_fingerprint`) of a sweep entry's bundle run, from its
    ``argv`` exactly as ``python -m monai.bundle run`` would read it (values parsed by ``fire``), without training:
    the network, loss, optimizer and transforms are built, nothing else. Checked entries only
    (:func:`spatialspec.sweep.checks.check_sweep_entry`).

    Raises:
        InputError: if the bundle config cannot build them (the root cause, in one line).
    """
    from fire.parser import DefaultParseValue
    from monai.bundle import ConfigWorkflow

    from spatialspec.errors import InputError, root_cause

    args = run["argv"][4:]
    options = {name[2:]: DefaultParseValue(value) for name, value in zip(args[::2], args[1::2])}
    options.pop("tracking", None)  # logging only: no part of the run's identity
    config_file, meta_file = options.pop("config_file"), options.pop("meta_file")
    try:
        workflow = ConfigWorkflow(config_file=config_file, meta_file=meta_file, logging_file=False,
                                  workflow_type=None, **options)
        return workflow.parser.get_parsed_content("fingerprint")
    except Exception as e:
        cause = root_cause(e)
        raise InputError(f"run {run['key']}: its bundle config does not build: {cause}") from None


def finished_in_folder(run: dict[str, Any], digest: str) -> bool:
    """Whether the entry's output folder holds its finished run: ``model.pt``, a fingerprint equal to the entry's,
    and a resume checkpoint at the last epoch (or stopped early)."""
    from spatialspec.handlers.resume import load_resume_checkpoint, stored_fingerprint
    from spatialspec.identity import FINGERPRINT_FILE, read_fingerprint_file

    folder = Path(run["output_dir"])
    checkpoint = folder / "resume" / "latest.pt"
    if not (folder / "models" / "model.pt").is_file() or not checkpoint.is_file():
        return False
    try:
        marker = read_fingerprint_file(folder / "models" / FINGERPRINT_FILE)
        state = load_resume_checkpoint(checkpoint, mmap=True)
    except ValueError:
        return False
    stored = stored_fingerprint(state)
    done = state["epoch"] >= state["max_epochs"] or bool(state.get("terminated", False))
    return done and marker is not None and marker["digest"] == digest and stored is not None and \
        stored["digest"] == digest


def execute_run(run: dict[str, Any], log_dir: Path, append: bool = False, launcher: Sequence[str] = (),
                cwd: str | None = None) -> RunOutcome:
    """Run one checked sweep entry's ``python -m monai.bundle run`` in a subprocess (this interpreter, the
    environment less ``MLFLOW_TRACKING_URI``: the entry names its tracking URI), its output in ``<key>.log``.

    Args:
        run: the entry (:func:`spatialspec.sweep.checks.check_sweep_entry`).
        log_dir: the folder of the log.
        append: append to the log (a retried attempt) instead of replacing it.
        launcher: an argument list the command is appended to (e.g. one that makes it die with its parent).
        cwd: the working directory of the command (default: this process's).

    Returns:
        ``finished`` on exit status 0, else ``failed`` with the exit status (negative: killed by that signal).
    """
    argv = [sys.executable if a == "python" and i == 0 else a for i, a in enumerate(run["argv"])]
    log = log_dir / f"{run['key']}.log"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    started = time.perf_counter()
    with open(log, "a" if append else "w") as out:
        rc = subprocess.run([*launcher, *argv], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd).returncode
    return RunOutcome(run["key"], "finished" if rc == 0 else "failed", rc, time.perf_counter() - started, str(log))


def pending_runs(sweep: dict[str, Any], progress: Callable[[RunOutcome], None] | None = None
                 ) -> tuple[dict[str, RunOutcome], list[dict[str, Any]]]:
    """Split a sweep's entries into those already finished with their fingerprint (a FINISHED MLflow run carrying
    it, or the run folder's completed checkpoint: ``skipped`` outcomes, reported to ``progress``) and those to run.

    Returns:
        the ``skipped`` outcomes by run key, and the entries to run in the sweep's order.
    """
    done = finished_fingerprints(sweep.get("tracking_uri"), sweep.get("experiment_name", ""))
    skipped: dict[str, RunOutcome] = {}
    todo = []
    for run in sweep["runs"]:
        try:
            digest = entry_fingerprint(run)["digest"]
        except ValueError:  # a config that does not build: the run is tried and fails with its own message
            digest = None
        if digest is not None and (digest in done.get(run["key"], set()) or finished_in_folder(run, digest)):
            skipped[run["key"]] = RunOutcome(run["key"], "skipped", None, 0.0, None)
            if progress is not None:
                progress(skipped[run["key"]])
        else:
            todo.append(run)
    return skipped, todo


def run_sweep(sweep: dict[str, Any], jobs: int = 1, log_dir: str | Path | None = None,
             progress: Callable[[RunOutcome], None] | None = None) -> list[RunOutcome]:
    """Run every entry of ``sweep`` (see :func:`spatialspec.sweep.make_sweep`) with ``jobs`` concurrent processes.

    Args:
        sweep: the sweep file's content (:func:`spatialspec.sweep.read_sweep`).
        jobs: concurrent runs (>= 1).
        log_dir: one ``<key>.log`` per run (default ``<sweep out_dir>/logs``).
        progress: called with each outcome as it arrives.

    Returns:
        one outcome per run, in the sweep's order.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    log_dir = Path(log_dir if log_dir is not None else Path(sweep["out_dir"]) / "logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    outcomes, todo = pending_runs(sweep, progress)

    def work(run: dict[str, Any]) -> RunOutcome:
        try:
            outcome = execute_run(run, log_dir)
        except OSError as e:
            outcome = RunOutcome(run["key"], "failed", None, 0.0, f"could not start: {e}")
        if progress is not None:
            progress(outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for outcome in pool.map(work, todo):
            outcomes[outcome.key] = outcome
    return [outcomes[run["key"]] for run in sweep["runs"]]

