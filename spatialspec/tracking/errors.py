"""Which MLflow failures mean "the tracking server is unreachable", and HTTP settings that make such a failure fast.

Long runs (50 epochs per level and seed, Saab et al. 2022, Sec. 3.3.2; the real-data runs of Sec. 5) must not fail,
nor stall for minutes, because a tracking server is down: MLflow's own defaults retry a failed HTTP request 7 times
with exponential back-off (about four minutes per call) and wait up to 120 s for an answer.
"""

from __future__ import annotations

import os

__all__ = ["HTTP_DEFAULTS", "apply_http_defaults", "is_connection_error", "TrackingBufferWarning"]

#: MLflow HTTP settings applied by :func:`apply_http_defaults` where the environment does not set them: one retry
#: (a refused connection fails in milliseconds), a one-second back-off factor and a 10 s request timeout (a
#: server that accepts connections but never answers costs at most ~20 s, once per process).
HTTP_DEFAULTS: dict[str, str] = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}

# MLflow error codes that say the request reached a working server and was refused on its merits: these are the
# caller's errors (e.g. a parameter logged again with another value) and are raised, never buffered
_CLIENT_ERROR_CODES = frozenset({"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST",
                                 "INVALID_STATE", "BAD_REQUEST"})


class TrackingBufferWarning(UserWarning):
    """Warned once per buffer file when MLflow records go to a local buffer instead of the tracking store."""


def apply_http_defaults() -> dict[str, str]:
    """Set every variable of :data:`HTTP_DEFAULTS` that is not already set in ``os.environ`` (MLflow reads them at
    each request, so this takes effect for clients that already exist).

    Returns:
        the variables this call set.
    """
    applied = {}
    for name, value in HTTP_DEFAULTS.items():
        if name not in os.environ:
            os.environ[name] = applied[name] = value
    return applied


def is_connection_error(error: BaseException) -> bool:
    """Whether ``error`` from an MLflow client call means the store could not be reached or could not answer
    (``requests``/socket errors, and :class:`~mlflow.exceptions.MlflowException` -- including ``RestException`` --
    after MLflow's retries), as opposed to a request the store refused (invalid or conflicting values)."""
    if isinstance(error, OSError):  # ConnectionError, TimeoutError, socket errors
        return True
    try:
        import requests

        if isinstance(error, requests.exceptions.RequestException):
            return True
    except ImportError:  # pragma: no cover - requests is an MLflow dependency
        pass
    from mlflow.exceptions import MlflowException

    return isinstance(error, MlflowException) and getattr(error, "error_code", None) not in _CLIENT_ERROR_CODES
