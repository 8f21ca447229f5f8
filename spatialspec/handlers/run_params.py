"""Record a run's parameters (level, seed, score, data-model parameters) in the MLflow run of a bundle."""

from __future__ import annotations

import warnings
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


def attach_run_params(handlers: Sequence[Any], params: Mapping[str, Any],
                      fingerprint: Mapping[str, Any] | None = None) -> list[Any]:
    """Give every :class:`~monai.handlers.MLFlowHandler` among ``handlers`` the run's ``params`` to log.

    ``python -m monai.bundle run --tracking mlflow`` appends an ``MLFlowHandler`` to ``train#handlers``; the bundles
    call this from their ``initialize`` list, so the run records the level, seed and data-model parameters as
    MLflow params next to the metrics. With a ``fingerprint`` (:func:`spatialspec.identity.run_fingerprint`) its
    digest is logged too, as the param ``fingerprint`` and the tag ``spatialspec.fingerprint`` (set once the
    handler has opened its run), which ``spatialspec sweep run`` matches. Without tracking it does nothing.

    Returns:
        the MLflow handlers that were given the parameters.
    """
    flat = flatten_params(params)
    if fingerprint is not None:
        flat["fingerprint"] = fingerprint["digest"]
    touched = []
    for handler in handlers:
        if isinstance(handler, MLFlowHandler):
            handler.experiment_param = {**(handler.experiment_param or {}), **flat}
            if fingerprint is not None:
                _tag_on_start(handler, fingerprint["digest"])
            touched.append(handler)
    return touched


def _tag_on_start(handler: MLFlowHandler, digest: str) -> None:
    """Make ``handler`` tag its run with ``digest`` right after it opens it (before ``attach`` registers ``start``;
    an unreachable store only loses the tag: the param is buffered with the others)."""
    from spatialspec.identity import FINGERPRINT_TAG

    opened = handler.start

    def start(engine: Any) -> None:
        opened(engine)
        if getattr(handler, "cur_run", None) is not None:
            try:
                handler.client.set_tag(handler.cur_run.info.run_id, FINGERPRINT_TAG, digest)
            except Exception as e:  # noqa: BLE001 - the store went away between two calls: keep training
                warnings.warn(f"could not tag MLflow run {handler.cur_run.info.run_id} with its fingerprint: {e}",
                              stacklevel=2)

    handler.start = start  # type: ignore[method-assign]
