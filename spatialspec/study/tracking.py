"""MLflow records of a whole study: a parent run holding the study's parameters and result files."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spatialspec.handlers.run_params import flatten_params

__all__ = ["log_study_run"]

_PARAM_BATCH = 100  # MLflow's limit of params per log_batch


def log_study_run(tracking_uri: str, experiment_name: str, params: dict[str, Any], records: Sequence[dict[str, Any]],
                  artifacts: Sequence[str | Path], run_name: str = "study",
                  buffer_file: str | Path | None = None) -> str | None:
    """Create a parent MLflow run for a study, log its parameters, headline metrics and result files, and tag every
    training run of ``records`` as its child (``mlflow.parentRunId``), so the MLflow UI nests them.

    With ``buffer_file``, an unreachable tracking server does not fail the study: the parent run (parameters,
    result files, children by run name, end) is appended to the buffer for ``spatialspec sync``.

    Returns:
        the parent run id (``None`` if the run was buffered).
    """
    if buffer_file is None:
        return _log_online(tracking_uri, experiment_name, params, records, artifacts, run_name)
    from spatialspec.tracking import TrackingBuffer

    buffer = TrackingBuffer(buffer_file, tracking_uri)

    def offline() -> None:
        flat = {key: str(value)[:6000] for key, value in flatten_params(params).items()}
        children = sorted({r["run_key"] for r in records if r.get("run_key")})
        buffer.record("start", experiment_name, run_name, start_time=int(time.time() * 1000))
        buffer.record("params", experiment_name, run_name, params=flat)
        buffer.record("artifacts", experiment_name, run_name, paths=[str(Path(p).resolve()) for p in artifacts],
                      artifact_path=None)
        buffer.record("parent", experiment_name, run_name, children=children)
        buffer.record("end", experiment_name, run_name, status="FINISHED", end_time=int(time.time() * 1000))

    return buffer.attempt(lambda: _log_online(tracking_uri, experiment_name, params, records, artifacts, run_name,
                                              buffer), offline)


def _log_online(tracking_uri: str, experiment_name: str, params: dict[str, Any], records: Sequence[dict[str, Any]],
                artifacts: Sequence[str | Path], run_name: str, buffer: Any = None) -> str:
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    from spatialspec.tracking.store import create_sqlite_store

    create_sqlite_store(tracking_uri)  # a study whose runs were not tracked here: a new store, fast
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(experiment_name)
    run = client.create_run(experiment_id, run_name=run_name)
    run_id = run.info.run_id
    if buffer is not None:  # records buffered after a failure below go to this run
        buffer.remember_run(experiment_name, run_name, run_id)
    # one request per MLflow batch of params (at most 100), not one per param
    flat = [Param(key, str(value)[:6000]) for key, value in flatten_params(params).items()]
    for i in range(0, len(flat), _PARAM_BATCH):
        client.log_batch(run_id, params=flat[i:i + _PARAM_BATCH], synchronous=True)
    for path in artifacts:
        client.log_artifact(run_id, str(path))
    for child in {r["run_id"] for r in records if r.get("run_id")}:
        client.set_tag(child, "mlflow.parentRunId", run_id)
    client.set_terminated(run_id)
    return run_id
