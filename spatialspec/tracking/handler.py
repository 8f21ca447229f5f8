"""MONAI's MLflow handler, buffering locally whatever it cannot send to an unreachable tracking server."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ignite.engine import Engine
from monai.handlers import MLFlowHandler
from monai.utils import flatten_dict

from .buffer import BUFFER_NAME, TrackingBuffer, metric_entry
from .errors import apply_http_defaults, is_connection_error

__all__ = ["BufferedMLFlowHandler", "RUN_ID_STATE"]

#: the ``engine.state`` attribute that names the MLflow run of an engine: :class:`BufferedMLFlowHandler` continues
#: the run it names when it starts (a resumed run: :class:`spatialspec.handlers.ResumeHandler` sets it) and sets it
#: once its run is open (the resume checkpoint stores it)
RUN_ID_STATE = "mlflow_run_id"


class BufferedMLFlowHandler(MLFlowHandler):
    """:class:`monai.handlers.MLFlowHandler` whose MLflow calls (start the run, log params, metrics and artifacts,
    end the run) never stop training: a call that fails to reach the tracking store marks its URI offline for the
    process, and that call and every later one are appended to ``buffer_file`` (see
    :mod:`spatialspec.tracking.buffer`), with one :class:`~spatialspec.tracking.TrackingBufferWarning` naming the
    file. ``spatialspec sync --buffer FILE`` pushes them later, into the run the handler had created if it exists.

    The study's training runs (Saab et al. 2022, Sec. 3.3.2 and 5) use it through
    :func:`spatialspec.tracking.mlflow_settings` (``--tracking bundles/tracking_mlflow.json``). Creating one
    applies :data:`spatialspec.tracking.HTTP_DEFAULTS` (few retries, short timeout) where the environment sets no
    MLflow HTTP options, so an unreachable server costs one failed request rather than minutes of retries.

    Resume: when its engine starts with ``engine.state.mlflow_run_id`` set (:data:`RUN_ID_STATE`; the
    :class:`~spatialspec.handlers.ResumeHandler` sets it from its checkpoint), the handler continues that run instead
    of looking one up by name, and its buffered records name it; once its run is open it sets the attribute to the
    run's id, which the resume checkpoint stores.

    Args:
        buffer_file: the buffer; ``None`` gives ``<cwd>/mlflow_buffer.jsonl``.
        kwargs: the arguments of :class:`~monai.handlers.MLFlowHandler` (``tracking_uri``, ``experiment_name``,
            ``run_name``, ``artifacts``, ...).
    """

    def __init__(self, buffer_file: str | os.PathLike | None = None, **kwargs: Any) -> None:
        apply_http_defaults()
        super().__init__(**kwargs)
        uri = self.client.tracking_uri
        self.buffer = TrackingBuffer(buffer_file or Path.cwd() / BUFFER_NAME, uri)
        self._started = False
        self._continued_run_id: str | None = None

    def _run_ref(self) -> tuple[str, str | None]:
        """(run name, store run id or None) of the run this handler logs to."""
        if self.cur_run is not None:
            return self.cur_run.info.run_name, self.cur_run.info.run_id
        name = self.run_name or self.buffer.default_run_name(self.experiment_name)
        return name, self.buffer.known_run_id(self.experiment_name, name) or self._continued_run_id

    def _record(self, kind: str, **payload: Any) -> None:
        name, run_id = self._run_ref()
        self.buffer.record(kind, self.experiment_name, name, run_id, **payload)

    def _guarded(self, action: Callable[[], Any], kind: str, **payload: Any) -> None:
        self.buffer.attempt(action, lambda: self._record(kind, **payload))

    def _reopen(self, run_id: str) -> None:
        """Make the store's run ``run_id`` this handler's run; a run the store does not have is warned about and left
        to MONAI's lookup by name (a connection error propagates: the handler goes offline)."""
        try:
            self.cur_run = self.client.get_run(run_id)
        except Exception as e:
            if is_connection_error(e):
                raise
            self._continued_run_id = None
            warnings.warn(f"could not reopen MLflow run {run_id} to resume it: {e}", stacklevel=3)

    def start(self, engine: Engine) -> None:
        """Open (or reopen: see the class docstring) the run and log its parameters; buffer them if the store is
        unreachable."""
        self._started = True
        run_id = getattr(engine.state, RUN_ID_STATE, None) if self.cur_run is None else None
        self._continued_run_id = str(run_id) if run_id else None

        def online() -> None:
            if self._continued_run_id is not None:
                self._reopen(self._continued_run_id)
            MLFlowHandler.start(self, engine)
            if self.cur_run is not None:
                self.buffer.remember_run(self.experiment_name, self.cur_run.info.run_name, self.cur_run.info.run_id,
                                         default=self.run_name is None)
                setattr(engine.state, RUN_ID_STATE, self.cur_run.info.run_id)

        def offline() -> None:
            self._record("start", start_time=int(time.time() * 1000))
            name, _ = self._run_ref()
            noted = self.buffer.noted_params(self.experiment_name, name)
            attrs = {attr: getattr(engine.state, attr, None) for attr in self.default_tracking_params
                     if attr not in noted}
            params = {**flatten_dict(self.experiment_param or {}), **attrs}
            self._record("params", params={k: str(v) for k, v in params.items()})

        self.buffer.attempt(online, offline)

    def _log_params(self, params: dict[str, Any]) -> None:
        def online() -> None:
            MLFlowHandler._log_params(self, params)
            self.buffer.note_params(self.experiment_name, self._run_ref()[0], params)

        self.buffer.attempt(online, lambda: self._record("params", params={k: str(v) for k, v in params.items()}))

    def _log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        # MONAI's own call when the store answers; the buffer's records are built only when it does not
        def offline() -> None:
            timestamp = int(time.time() * 1000)
            self._record("metrics", metrics=[metric_entry(k, v, timestamp, step or 0)
                                             for k, v in flatten_dict(metrics).items()])

        self.buffer.attempt(lambda: MLFlowHandler._log_metrics(self, metrics, step), offline)

    def complete(self) -> None:
        """Log the artifacts (the executed config) at the end of the engine's run, or buffer their paths."""
        if not self.artifacts or not self._started:
            return
        paths = [os.path.abspath(p) for p in self._parse_artifacts()]
        if not paths:
            return
        if self.cur_run is None:  # the store was unreachable when the run started
            self._record("artifacts", paths=paths, artifact_path=None)
            return
        self._guarded(lambda: MLFlowHandler.complete(self), "artifacts", paths=paths, artifact_path=None)

    def close(self) -> None:
        """End the run as FINISHED (or buffer its end) and release a local SQLite store."""
        try:
            if self._started:
                end = {"status": self.run_finish_status, "end_time": int(time.time() * 1000)}
                if self.cur_run is not None:
                    run_id = self.cur_run.info.run_id
                    self._guarded(lambda: self.client.set_terminated(run_id, self.run_finish_status), "end", **end)
                else:
                    self._record("end", **end)
            self.cur_run = None
            self._started = False
        finally:
            self._dispose_sqlite_store()
