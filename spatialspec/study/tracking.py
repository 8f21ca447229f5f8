"""MLflow records of a whole study: a parent run holding the study's parameters and result files, and the test figures
added to each run's record."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spatialspec.handlers.run_params import flatten_params
from spatialspec.metrics.robust_auroc import FIGURE_NAMES
from spatialspec.tracking.buffer import BUFFER_NAME, TrackingBuffer, metric_entry

if TYPE_CHECKING:
    from .runner import StudyConfig

__all__ = ["log_study_run", "log_test_figures"]

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


def _fitted_names(record: dict[str, Any]) -> tuple[str, ...]:
    """What a record's method fitted beyond the weights (:attr:`spatialspec.registry.MethodEntry.fitted`)."""
    from spatialspec.registry import method_for_run

    return method_for_run(record["level"], record.get("model", "pixel")).fitted


def log_test_figures(config: StudyConfig, run_name: str, records: list[dict[str, Any]]) -> str | None:
    """Add the test figures of every score to the run's MLflow record (the validator logged the per-epoch ones), with
    their bootstrap bounds as ``test_<figure>_ci_low_<score>`` / ``..._ci_high_<score>`` when the study computed
    them; if the tracking server is unreachable they go to ``<out_dir>/mlflow_buffer.jsonl``.

    Returns:
        the MLflow run id (``None`` if buffered for a run the store never saw).

    Raises:
        RuntimeError: if the training run cannot be found in the tracking store.
    """
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(f"test_{name}_{r['score'].replace(':', '')}", r[name], now, 0)
               for r in records for name in FIGURE_NAMES]
    metrics += [Metric(f"test_{name}_ci_{bound}_{r['score'].replace(':', '')}", r[f"{name}_ci"][i], now, 0)
                for r in records for name in FIGURE_NAMES if r.get(f"{name}_ci") is not None
                for i, bound in enumerate(("low", "high"))]
    # what the method fitted beyond the weights (DFR's chosen C), once per run
    metrics += [Metric(name, records[0][name], now, 0) for name in _fitted_names(records[0]) if name in records[0]]
    # an unreachable server: buffer the figures with the run's other records (returns the run id if known)
    buffer = TrackingBuffer(Path(config.out_dir).resolve() / BUFFER_NAME, config.resolved_tracking_uri())
    logged = buffer.attempt(lambda: _log_figures_online(config, run_name, metrics), lambda: buffer.record(
        "metrics", config.experiment_name, run_name, metrics=[metric_entry(m.key, m.value, m.timestamp, m.step)
                                                             for m in metrics]))
    return logged or buffer.known_run_id(config.experiment_name, run_name)


def _log_figures_online(config: StudyConfig, run_name: str, metrics: list) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=config.resolved_tracking_uri())
    experiment = client.get_experiment_by_name(config.experiment_name)
    runs = [] if experiment is None else client.search_runs(
        [experiment.experiment_id], filter_string=f"attributes.run_name = '{run_name}'",
        order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise RuntimeError(f"MLflow run '{run_name}' not found in experiment '{config.experiment_name}' at "
                           f"{config.resolved_tracking_uri()}")
    run_id = runs[0].info.run_id
    client.log_batch(run_id, metrics=metrics)
    return run_id
