"""MLflow tracking that survives an unreachable server: a buffering MLFlowHandler, the bundle tracking settings that
use it, and the replay of a buffer into a tracking store (``spatialspec sync``). Infrastructure for the long runs of
Saab et al. 2022 (Sec. 3.3.2, 5).

:class:`BufferedMLFlowHandler` (a MONAI handler) is imported on first access, so that the buffer, the settings and
``spatialspec sync`` need neither torch nor MONAI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .buffer import BUFFER_FORMAT, BUFFER_NAME, TrackingBuffer, read_buffer, reset_tracking_state
from .errors import HTTP_DEFAULTS, TrackingBufferWarning, apply_http_defaults, is_connection_error
from .settings import mlflow_settings
from .sync import SyncReport, sync_buffer

if TYPE_CHECKING:
    from .handler import BufferedMLFlowHandler

__all__ = ["BUFFER_FORMAT", "BUFFER_NAME", "TrackingBuffer", "read_buffer", "reset_tracking_state", "HTTP_DEFAULTS",
           "TrackingBufferWarning", "apply_http_defaults", "is_connection_error", "BufferedMLFlowHandler",
           "mlflow_settings", "SyncReport", "sync_buffer"]


def __getattr__(name: str) -> Any:
    """:class:`BufferedMLFlowHandler` on first access (PEP 562): it subclasses MONAI's ``MLFlowHandler``."""
    if name == "BufferedMLFlowHandler":
        from .handler import BufferedMLFlowHandler

        return BufferedMLFlowHandler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names and :data:`__all__`, imported or not."""
    return sorted(set(globals()) | set(__all__))
