"""Run a sweep file on an existing Ray cluster (``spatialspec sweep run --engine ray``): one Ray task per entry, with
``num_cpus`` / ``num_gpus`` per run, that runs exactly the subprocess the local runner runs
(:func:`spatialspec.sweep.run.execute_run`: the entry's ``python -m monai.bundle run``), so the bundle run, its
MLflow logging and its run identity are the local runner's. Finished runs are skipped by fingerprint
(:func:`spatialspec.sweep.run.pending_runs`) before anything is submitted.

Failures and retries: a task whose Ray worker dies (the node is lost, the worker is killed) is retried by Ray up to
``max_retries`` times, and so is a run whose bundle process is killed by a signal (the OOM killer or a preemption
kills the training process, not its worker); a retried run resumes from its checkpoint in its ``output_dir``, as
every bundle does, and logs into the same MLflow run. On Linux the bundle process dies with its worker
(``PR_SET_PDEATHSIG``), so a retry never runs beside an orphaned attempt. A bundle that exits with a non-zero status
failed on its own (bad settings, a run folder of other settings): it is reported, not retried.

Ray is an optional dependency (``pip install 'spatialspec[ray]'``), imported only here, only when a sweep runs.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spatialspec.errors import InputError

from .run import RunOutcome, execute_run, pending_runs

__all__ = ["RAY_EXTRA", "RunKilled", "connect", "run_entry", "run_sweep_ray"]

#: how to install Ray, named when it is missing
RAY_EXTRA = "pip install 'spatialspec[ray]'"
#: seconds to wait for the TCP connection to a cluster's address before saying that nothing answers there
CONNECT_TIMEOUT_S = 5.0

# Runs the command in argv[2:] after asking the kernel to SIGKILL it when its parent (the Ray worker's thread that
# started it) dies; exec keeps the setting. If the parent is already gone, the command is not started.
_DIE_WITH_PARENT = ("import ctypes, os, signal, sys\n"
                    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)\n"  # 1: PR_SET_PDEATHSIG
                    "if os.getppid() != int(sys.argv[1]):\n"
                    "    os.kill(os.getpid(), signal.SIGKILL)\n"
                    "os.execv(sys.argv[2], sys.argv[2:])\n")


class RunKilled(RuntimeError):
    """A run's bundle process was killed by a signal; Ray retries the task (``retry_exceptions``).

    Args:
        key: the run's key.
        signum: the signal.
    """

    def __init__(self, key: str, signum: int) -> None:
        super().__init__(key, signum)  # the arguments, so that the error pickles between Ray's processes
        self.key, self.signum = key, signum

    def __str__(self) -> str:
        return f"{self.key}: the bundle process was killed by signal {self.signum}"


def _launcher() -> list[str]:
    """The argument list that makes the bundle process die with the task's worker (Linux only; elsewhere none)."""
    if not sys.platform.startswith("linux"):
        return []
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid())]


def run_entry(run: dict[str, Any], log_dir: str, cwd: str) -> RunOutcome:
    """The body of one Ray task: :func:`~spatialspec.sweep.run.execute_run` on the worker's node, appending one
    attempt to the run's log, in ``cwd`` where that folder exists there.

    Raises:
        RunKilled: when the bundle process was killed by a signal (Ray retries the task).
    """
    log = Path(log_dir) / f"{run['key']}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        out.write(f"== spatialspec sweep (ray): attempt on {socket.gethostname()}, worker pid {os.getpid()}, "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    outcome = execute_run(run, log.parent, append=True, launcher=_launcher(),
                          cwd=cwd if Path(cwd).is_dir() else None)
    if outcome.returncode is not None and outcome.returncode < 0:
        raise RunKilled(run["key"], -outcome.returncode)
    return outcome


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError(f"--engine ray: Ray is not installed; {RAY_EXTRA}") from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of an address ``HOST:PORT`` or ``ray://HOST:PORT``; ``None`` for ``auto`` and the like."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def connect(address: str | None) -> Any:
    """Connect this process to the Ray cluster at ``address`` (default: ``RAY_ADDRESS``, else ``auto``: the cluster
    started on this machine with ``ray start``) and return the ``ray`` module.

    Raises:
        InputError: in one line, if Ray is not installed or no cluster answers at the address (a ``HOST:PORT`` is
            tried with a plain TCP connection first, within :data:`CONNECT_TIMEOUT_S`).
    """
    ray = _import_ray()
    address = address or os.environ.get("RAY_ADDRESS") or "auto"
    where = _host_port(address)
    if where is not None:
        try:
            socket.create_connection(where, timeout=CONNECT_TIMEOUT_S).close()
        except OSError as e:
            raise InputError(f"--address {address}: no Ray cluster answers there ({e.strerror or e}); start one "
                             "with `ray start --head` or give its head's address") from None
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except ImportError as e:  # a ray:// address needs Ray's client extra
        raise InputError(f"--address {address}: {e}; connect to the head's HOST:PORT instead, or pip install "
                         "'ray[client]'") from None
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"--address {address}: cannot connect to a Ray cluster: {first}") from None
    return ray


def _failure(ray: Any, run: dict[str, Any], error: Exception, log: Path, attempts: int) -> RunOutcome:
    if isinstance(error, ray.exceptions.RayTaskError) and isinstance(error.cause, RunKilled):
        reason = f"its bundle process was killed by signal {error.cause.signum} on each of its {attempts} attempts"
    elif isinstance(error, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError):
        reason = f"its Ray worker died on each of its {attempts} attempts"
    else:  # an error of the task itself (e.g. the command could not start), or of Ray
        cause = error.cause if isinstance(error, ray.exceptions.RayTaskError) and error.cause else error
        text = str(cause).strip()
        reason = f"{type(cause).__name__}: {text.splitlines()[0] if text else ''}"
    return RunOutcome(run["key"], "failed", None, 0.0, str(log), reason=reason)


def run_sweep_ray(sweep: dict[str, Any], address: str | None = None, cpus_per_run: float = 1.0,
                  gpus_per_run: float = 0.0, max_retries: int = 3, log_dir: str | Path | None = None,
                  progress: Callable[[RunOutcome], None] | None = None) -> list[RunOutcome]:
    """Run every entry of ``sweep`` as a Ray task on the cluster at ``address``; entries finished with their
    fingerprint are skipped, as by :func:`spatialspec.sweep.run_sweep`.

    Args:
        sweep: the sweep file's content (:func:`spatialspec.sweep.read_sweep`); its paths (bundles, ``out_dir``,
            a ``sqlite`` tracking store) must be the same on every node: a shared folder, or the same image.
        address: the cluster (``HOST:PORT`` of its head; ``ray://HOST:PORT`` with Ray's client extra; ``auto``);
            default ``RAY_ADDRESS``, else ``auto``.
        cpus_per_run: Ray ``num_cpus`` of each run (> 0).
        gpus_per_run: Ray ``num_gpus`` of each run (>= 0; fractions share a GPU).
        max_retries: how often a run whose worker died, or whose bundle process was killed, is run again (>= 0).
        log_dir: one ``<key>.log`` per run, written by the workers (default ``<sweep out_dir>/logs``).
        progress: called with each outcome as it arrives.

    Returns:
        one outcome per run, in the sweep's order.

    Raises:
        InputError: for a bad parameter, a missing Ray or an unreachable cluster, before anything runs.
    """
    if not cpus_per_run > 0:
        raise InputError(f"--cpus-per-run must be > 0, got {cpus_per_run}")
    if not gpus_per_run >= 0:
        raise InputError(f"--gpus-per-run must be >= 0, got {gpus_per_run}")
    if max_retries < 0:
        raise InputError(f"--max-retries must be >= 0, got {max_retries}")
    ray = connect(address)
    try:
        log_dir = Path(log_dir if log_dir is not None else Path(sweep["out_dir"]) / "logs").resolve()
        log_dir.mkdir(parents=True, exist_ok=True)
        outcomes, todo = pending_runs(sweep, progress)
        task = ray.remote(run_entry)
        futures = {}
        for run in todo:
            (log_dir / f"{run['key']}.log").write_text("")  # this sweep run's attempts only
            options = task.options(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=max_retries,
                                   retry_exceptions=[RunKilled], name=f"spatialspec-sweep:{run['key']}")
            futures[options.remote(run, str(log_dir), os.getcwd())] = run
        waiting = list(futures)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            run = futures[ready[0]]
            try:
                outcome = ray.get(ready[0])
            except ray.exceptions.RayError as e:
                outcome = _failure(ray, run, e, log_dir / f"{run['key']}.log", max_retries + 1)
            outcomes[run["key"]] = outcome
            if progress is not None:
                progress(outcome)
    finally:
        ray.shutdown()
    return [outcomes[run["key"]] for run in sweep["runs"]]
