"""MONAI's MLflow handler, buffering locally whatever it cannot send to an unreachable tracking server."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events
from monai.handlers import MLFlowHandler
from monai.utils import flatten_dict

from .batch import MAX_DELAY_S, MetricBatcher, batcher_for, find_batcher
from .buffer import BUFFER_NAME, TrackingBuffer, metric_entry
from .errors import apply_http_defaults, is_connection_error
from .store import create_sqlite_store

__all__ = ["BufferedMLFlowHandler", "RUN_ID_STATE", "BATCHING_MODES"]

#: the ``engine.state`` attribute that names the MLflow run of an engine: :class:`BufferedMLFlowHandler` continues
#: the run it names when it starts (a resumed run: :class:`spatialspec.handlers.ResumeHandler` sets it) and sets it
#: once its run is open (the resume checkpoint stores it)
RUN_ID_STATE = "mlflow_run_id"
#: how :class:`BufferedMLFlowHandler` writes metric points: ``async`` (batched, written by a background thread at
#: each epoch end), ``epoch`` (batched, written at each epoch end before training goes on) or ``off`` (one
#: synchronous request per logging call, as MONAI's handler)
BATCHING_MODES = ("async", "epoch", "off")


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

    Metric points (per-iteration loss and learning rate, per-epoch metrics) are batched
    (:mod:`spatialspec.tracking.batch`): with ``batching="async"`` (the default) they are written with one
    ``log_batch`` by a background thread, while training goes on, at the first epoch end ``flush_interval`` seconds or
    more after the last write (one request an epoch for long epochs, one every few epochs for short ones); every
    handler of the run shares that thread, and closing the run waits for it. The same keys, values, steps and
    timestamps are logged as with ``batching="off"`` (MONAI's one request per call). A process killed without warning
    loses at most the points logged since the last flush (at most 1000 points or ``flush_interval`` seconds of them)
    and the batch being written at that moment; ``batching="epoch"`` writes each epoch's batch before training goes
    on, so a completed epoch is always in the store. Parameters, tags, the run's
    start and end and artifacts stay synchronous. A new local SQLite store is created by
    :func:`~spatialspec.tracking.store.create_sqlite_store` (the same database, without MLflow's per-statement disk
    syncs).

    Params: the experiment's and the engine's (``max_epochs``, ``epoch_length``) go out in one request when the run
    opens; which ones the run already has is known from the run as MLflow returned it and from what this process
    logged since, so a validator's handler, started once per epoch, costs no request (MONAI's handler reads the whole
    run back each time).

    Args:
        buffer_file: the buffer; ``None`` gives ``<cwd>/mlflow_buffer.jsonl``.
        batching: one of :data:`BATCHING_MODES`.
        flush_interval: with batching, the longest time in seconds points wait while they keep being logged; with
            ``batching="async"`` also the shortest time between two epoch-end writes.
        kwargs: the arguments of :class:`~monai.handlers.MLFlowHandler` (``tracking_uri``, ``experiment_name``,
            ``run_name``, ``artifacts``, ...).

    Raises:
        ValueError: for a ``batching`` mode not in :data:`BATCHING_MODES` or a ``flush_interval`` <= 0.
    """

    def __init__(self, buffer_file: str | os.PathLike | None = None, batching: str = "async",
                 flush_interval: float = MAX_DELAY_S, **kwargs: Any) -> None:
        if batching not in BATCHING_MODES:
            raise ValueError(f"BufferedMLFlowHandler: batching must be one of {', '.join(BATCHING_MODES)}, "
                             f"got {batching!r}")
        if flush_interval <= 0:
            raise ValueError(f"BufferedMLFlowHandler: flush_interval must be > 0 seconds, got {flush_interval}")
        apply_http_defaults()
        # the URI MONAI's handler resolves (the environment first, then the argument, then ./mlruns.db)
        create_sqlite_store(os.environ.get("MLFLOW_TRACKING_URI") or kwargs.get("tracking_uri")
                            or f"sqlite:///{Path.cwd().absolute() / 'mlruns.db'}")
        super().__init__(**kwargs)
        uri = self.client.tracking_uri
        self.buffer = TrackingBuffer(buffer_file or Path.cwd() / BUFFER_NAME, uri)
        self.batching, self.flush_interval = batching, flush_interval
        self._start_params: dict[str, Any] | None = None  # params MONAI's start logs, collected to log at once
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
            # MONAI logs experiment_param, then the engine's attributes the run lacks: one request for both
            self._start_params = {}
            try:
                MLFlowHandler.start(self, engine)
            finally:
                params, self._start_params = self._start_params, None
            self._log_params(params)
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

    def _delete_exist_param_in_dict(self, param_dict: dict) -> None:
        """Drop the params the run already has -- those it had when this handler opened it (MLflow returned them
        with the run), those this process logged to it since, those about to be logged with them -- without reading
        the whole run back (as MONAI does, every time a validator starts)."""
        if self.cur_run is None:
            return
        existing = (set(self.cur_run.data.params) | self.buffer.stored_params(self.cur_run.info.run_id)
                    | set(self._start_params or ()))
        for key in existing & set(param_dict):
            del param_dict[key]

    def _log_params(self, params: dict[str, Any]) -> None:
        if self._start_params is not None:  # in start(): logged together when MONAI's start returns
            self._start_params.update(params)
            return
        if not params:  # MONAI logs the params left after _delete_exist_param_in_dict, often none: no request
            return

        def online() -> None:
            MLFlowHandler._log_params(self, params)
            self.buffer.note_params(self.experiment_name, self._run_ref()[0], params)
            self.buffer.note_stored_params(self.cur_run.info.run_id, params)

        self.buffer.attempt(online, lambda: self._record("params", params={k: str(v) for k, v in params.items()}))

    def _batcher(self, create: bool = True) -> MetricBatcher | None:
        """The batcher of this handler's run, shared with the run's other handlers (``create``: made if the run has
        none); ``None`` with ``batching="off"`` or without an open run."""
        if self.batching == "off" or self.cur_run is None:
            return None
        info = self.cur_run.info
        if not create:
            return find_batcher(self.buffer.tracking_uri, info.run_id)
        return batcher_for(self.client, self.buffer, self.experiment_name, info.run_name, info.run_id,
                           max_delay=self.flush_interval)

    def _log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        timestamp = int(time.time() * 1000)
        batcher = None if self.buffer.offline else self._batcher()
        if batcher is not None:
            if batcher.has_failures:
                batcher.drain()  # the store went away: buffer what failed, then this call goes to the buffer too
            else:
                # MONAI's points, the same call's timestamp for each
                from mlflow.entities import Metric

                batcher.add([Metric(k, v, timestamp, step or 0) for k, v in flatten_dict(metrics).items()])
                return
        self._drain()

        # MONAI's own call when the store answers; the buffer's records are built only when it does not
        def offline() -> None:
            self._record("metrics", metrics=[metric_entry(k, v, timestamp, step or 0)
                                             for k, v in flatten_dict(metrics).items()])

        self.buffer.attempt(lambda: MLFlowHandler._log_metrics(self, metrics, step), offline)

    def _drain(self) -> None:
        """Buffer the points of this run's batcher that failed to reach the store (before a record that follows
        them)."""
        batcher = self._batcher(create=False)
        if batcher is not None and batcher.has_failures:
            batcher.drain()

    def flush(self, wait: bool = False) -> None:
        """Hand the run's waiting metric points to the store (``wait``: return once they are written), buffering
        those that could not be written."""
        batcher = self._batcher(create=False)
        if batcher is not None:
            batcher.flush(wait=wait)
            batcher.drain()

    def attach(self, engine: Engine) -> None:
        """MONAI's events, and with batching a flush of the run's points when ``engine`` completes an epoch (after
        MONAI's epoch log, whether or not ``epoch_log`` logs that epoch) and no other engine of the run is inside
        one (:meth:`MetricBatcher.epoch_completed <spatialspec.tracking.batch.MetricBatcher.epoch_completed>`)."""
        super().attach(engine)
        if self.batching == "off":
            return
        for event, handler in ((Events.EPOCH_STARTED, self._epoch_started), (Events.EPOCH_COMPLETED, self._epoch_end),
                               (Events.TERMINATE, self._epoch_end)):
            if not engine.has_event_handler(handler, event):
                engine.add_event_handler(event, handler)

    def _epoch_started(self, engine: Engine) -> None:
        batcher = None if self.buffer.offline else self._batcher()
        if batcher is not None:
            batcher.epoch_started(engine)

    def _epoch_end(self, engine: Engine) -> None:
        """Once no engine of the run is inside an epoch, the run's points to the store: every epoch before training
        goes on (``batching="epoch"``), or in the background once ``flush_interval`` seconds have passed since the
        last flush (``batching="async"``)."""
        batcher = self._batcher(create=False)
        if batcher is not None and batcher.epoch_completed(engine):
            if self.batching == "epoch":
                self.flush(wait=True)
            elif batcher.due:
                self.flush()

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
        """Write the run's waiting metric points, then end the run as FINISHED (or buffer its end) and release a
        local SQLite store."""
        try:
            batcher = self._batcher(create=False)
            if batcher is not None:
                batcher.close()
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
