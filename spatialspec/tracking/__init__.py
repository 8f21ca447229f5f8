"""MLflow tracking that survives an unreachable server: a buffering MLFlowHandler, the bundle tracking settings that
use it, and the replay of a buffer into a tracking store (``spatialspec sync``). Infrastructure for the long runs of
Saab et al. 2022 (Sec. 3.3.2, 5)."""

from .buffer import BUFFER_FORMAT, BUFFER_NAME, TrackingBuffer, read_buffer, reset_tracking_state
from .errors import HTTP_DEFAULTS, TrackingBufferWarning, apply_http_defaults, is_connection_error
from .handler import BufferedMLFlowHandler
from .settings import mlflow_settings
from .sync import SyncReport, sync_buffer

__all__ = ["BUFFER_FORMAT", "BUFFER_NAME", "TrackingBuffer", "read_buffer", "reset_tracking_state", "HTTP_DEFAULTS",
           "TrackingBufferWarning", "apply_http_defaults", "is_connection_error", "BufferedMLFlowHandler",
           "mlflow_settings", "SyncReport", "sync_buffer"]
