"""Record a run's parameters (level, seed, score, data-model parameters) in the MLflow run of a bundle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from monai.handlers import MLFlowHandler

__all__ = ["attach_run_params", "flatten_params"]


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into ``a.b`` keys; ``None`` becomes the string ``"none"`` (MLflow params are text)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            flat[name] = "none" if value is None else value
    return flat


def attach_run_params(handlers: Sequence[Any], params: Mapping[str, Any]) -> list[Any]:
    """Give every :class:`~monai.handlers.MLFlowHandler` among ``handlers`` the run's ``params`` to log.

    ``python -m monai.bundle run --tracking mlflow`` appends an ``MLFlowHandler`` to ``train#handlers``; the bundles
    call this from their ``initialize`` list, so the run records the level, seed and data-model parameters as
    MLflow params next to the metrics. Without tracking it does nothing.

    Returns:
        the MLflow handlers that were given the parameters.
    """
    flat = flatten_params(params)
    touched = []
    for handler in handlers:
        if isinstance(handler, MLFlowHandler):
            handler.experiment_param = {**(handler.experiment_param or {}), **flat}
            touched.append(handler)
    return touched
