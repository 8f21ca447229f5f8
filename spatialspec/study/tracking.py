"""MLflow records of a whole study: a parent run holding the study's parameters and result files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spatialspec.handlers.run_params import flatten_params

__all__ = ["log_study_run"]


def log_study_run(tracking_uri: str, experiment_name: str, params: dict[str, Any], records: Sequence[dict[str, Any]],
                  artifacts: Sequence[str | Path], run_name: str = "study") -> str:
    """Create a parent MLflow run for a study, log its parameters, headline metrics and result files, and tag every
    training run of ``records`` as its child (``mlflow.parentRunId``), so the MLflow UI nests them.

    Returns:
        the parent run id.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(experiment_name)
    run = client.create_run(experiment_id, run_name=run_name)
    run_id = run.info.run_id
    for key, value in flatten_params(params).items():
        client.log_param(run_id, key, str(value)[:6000])
    for path in artifacts:
        client.log_artifact(run_id, str(path))
    for child in {r["run_id"] for r in records if r.get("run_id")}:
        client.set_tag(child, "mlflow.parentRunId", run_id)
    client.set_terminated(run_id)
    return run_id
