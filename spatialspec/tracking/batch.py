"""Batched, asynchronous metric logging for one MLflow run: the per-iteration and per-epoch points of
:class:`~spatialspec.tracking.BufferedMLFlowHandler` are collected and written with one ``MlflowClient.log_batch``
per epoch by a background thread, so that training does not wait for the tracking store (Saab et al. 2022,
Sec. 3.3.2 and 5: 50 epochs per level and seed, each logging its loss and validation AUROCs).

What is logged does not change: every point keeps its key, value, step and the timestamp of the call that logged it,
and the points of a run are written in the order they were logged, by one thread.

When points are written. A :class:`MetricBatcher` holds the points logged since its last flush and hands them to its
writer thread (which writes everything handed to it, in one request per 1000 points):

- when ``max_points`` points wait (MLflow's ``log_batch`` limit is 1000);
- when a point is logged ``max_delay`` seconds or more after the last flush;
- when the run is closed, which waits until every point is written;
- and, as :class:`~spatialspec.tracking.BufferedMLFlowHandler` asks: at an epoch end -- the outermost one: a
  validator run at its trainer's epoch end completes its epoch inside the trainer's, so a trainer's epoch and its
  validation go out together -- every epoch (``batching="epoch"``), or once ``max_delay`` seconds have passed since
  the last flush (``batching="async"``: one request an epoch for epochs longer than ``max_delay``, one every few
  epochs for shorter ones, whose per-request cost on a tracking server shared with training would otherwise add up).

Loss bound. A process killed without warning (``SIGKILL``; ``SIGTERM`` without a handler) loses the points not yet
written: those logged since the last flush -- at most ``max_points`` points and ``max_delay`` seconds of them (with
``batching="epoch"``: the iteration points of the unfinished epoch) -- and the batch being written at that moment
(a write takes one store round trip, milliseconds; a store slower than training lets flushed batches queue up, and
they are then written together). Every flushed batch whose write has returned is in the store. An ordinary exit,
with or without an exception, writes everything: an :mod:`atexit` hook closes every open batcher.

An unreachable store. A write that fails with a connection error
(:func:`~spatialspec.tracking.is_connection_error`) marks the URI offline for the process, as any other MLflow call of
the handler does; its points, and those of every later batch (which are not tried), go to the run's
:class:`~spatialspec.tracking.TrackingBuffer` as one ``metrics`` record per logging call, as the synchronous handler
writes them, when the main thread next logs, flushes or closes the run (:meth:`MetricBatcher.drain`). Any other
error (a request the store refused) is raised there.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Sequence
from typing import Any

from .buffer import TrackingBuffer, metric_entry
from .errors import is_connection_error

__all__ = ["MetricBatcher", "batcher_for", "find_batcher", "flush_all_batchers", "MAX_BATCH_POINTS", "MAX_DELAY_S"]

#: MLflow's limit of metrics per ``log_batch`` request
MAX_BATCH_POINTS = 1000
#: the longest time points wait between two flushes while points keep being logged (long epochs)
MAX_DELAY_S = 5.0
#: how long the exit hook waits for the writes of one run
EXIT_WAIT_S = 60.0

_BATCHERS: dict[tuple[str, str], MetricBatcher] = {}  # (tracking URI, run id) -> the run's open batcher
_LOCK = threading.Lock()


class _Offline(Exception):
    """A batch not tried because its tracking URI had been marked offline."""


class MetricBatcher:
    """The metric points of one MLflow run, written in batches by a background thread (see the module docstring).

    Every handler of a run (a trainer's and its validator's) shares one batcher (:func:`batcher_for`), so the run's
    points are written in logging order and closing the run waits for all of them.

    Args:
        client: the ``MlflowClient`` to write with.
        buffer: the run's buffer (where points go when the store is unreachable) and the offline state of its URI.
        experiment: the run's experiment name (for buffered records).
        run_name: the run's name (for buffered records).
        run_id: the store's run id.
        max_points: flush once this many points wait (at most MLflow's 1000 per ``log_batch``).
        max_delay: flush when a point is logged this many seconds or more after the last flush.
    """

    def __init__(self, client: Any, buffer: TrackingBuffer, experiment: str, run_name: str, run_id: str,
                 max_points: int = MAX_BATCH_POINTS, max_delay: float = MAX_DELAY_S) -> None:
        if not 1 <= max_points <= MAX_BATCH_POINTS:
            raise ValueError(f"MetricBatcher: max_points must be in [1, {MAX_BATCH_POINTS}], got {max_points}")
        if max_delay <= 0:
            raise ValueError(f"MetricBatcher: max_delay must be > 0 seconds, got {max_delay}")
        self.client, self.buffer = client, buffer
        self.experiment, self.run_name, self.run_id = experiment, run_name, run_id
        self.max_points, self.max_delay = max_points, max_delay
        self._pending: list[tuple[Any, ...]] = []  # logging calls (each a tuple of Metric) not flushed yet
        self._pending_points = 0
        self._queue: list[tuple[Any, ...]] = []  # flushed calls the writer has not taken yet
        self._failed: list[tuple[tuple[Any, ...], BaseException]] = []  # calls the writer could not write, and why
        self._writing = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._last_flush = time.monotonic()
        self._open_epochs: set[int] = set()  # engines (ids) of the run inside an epoch

    def epoch_started(self, engine: object) -> None:
        """Note that ``engine`` (one logging to this run) started an epoch."""
        self._open_epochs.add(id(engine))

    def epoch_completed(self, engine: object) -> bool:
        """Note that ``engine`` completed (or left) its epoch.

        Returns:
            whether no engine of the run is inside an epoch any more: the time to flush. A validator run at its
            trainer's epoch end completes its epoch inside the trainer's, so the trainer's iteration points and
            both engines' epoch metrics go out in one batch.
        """
        self._open_epochs.discard(id(engine))
        return not self._open_epochs

    @property
    def due(self) -> bool:
        """Whether the waiting points are due for a flush: ``max_delay`` seconds or more since the last flush, or
        ``max_points`` points waiting."""
        with self._cond:
            return bool(self._pending) and (self._pending_points >= self.max_points
                                            or time.monotonic() - self._last_flush >= self.max_delay)

    @property
    def idle(self) -> bool:
        """Whether every flushed point has been written (or failed) and none waits to be flushed."""
        with self._cond:
            return not (self._pending or self._queue or self._writing)

    def add(self, metrics: Sequence[Any]) -> None:
        """Queue the points of one logging call (``mlflow.entities.Metric``, sharing the call's timestamp); flush if
        ``max_points`` points wait or ``max_delay`` seconds have passed since the last flush."""
        if not metrics:
            return
        with self._cond:
            self._pending.append(tuple(metrics))
            self._pending_points += len(metrics)
            due = (self._pending_points >= self.max_points
                   or time.monotonic() - self._last_flush >= self.max_delay)
        if due:
            self.flush()

    def flush(self, wait: bool = False, timeout: float | None = None) -> bool:
        """Hand the waiting points to the writer thread; with ``wait``, return once they (and every earlier batch)
        are written or have failed.

        Returns:
            whether the writer is idle (always ``True`` without ``timeout`` when ``wait``).
        """
        with self._cond:
            self._last_flush = time.monotonic()
            if self._pending:
                self._queue.extend(self._pending)
                self._pending, self._pending_points = [], 0
                self._start_locked()
                self._cond.notify_all()
            if not wait:
                return not (self._queue or self._writing)
            return self._cond.wait_for(lambda: not (self._queue or self._writing), timeout)

    def drain(self) -> None:
        """Buffer the points the writer could not send because the store was unreachable (one ``metrics`` record per
        logging call, in logging order; the URI is marked offline).

        Raises:
            Exception: the first error that was not a connection error (after buffering nothing of its batch).
        """
        with self._cond:
            failed, self._failed = self._failed, []
        for _, error in failed:
            if not isinstance(error, _Offline) and not is_connection_error(error):
                raise error
        for call, error in failed:
            if not isinstance(error, _Offline):
                self.buffer.mark_offline(error)
            self.buffer.record("metrics", self.experiment, self.run_name, self.run_id,
                               metrics=[metric_entry(m.key, m.value, m.timestamp, m.step) for m in call])

    @property
    def has_failures(self) -> bool:
        """Whether points wait to be buffered by :meth:`drain`."""
        return bool(self._failed)

    def close(self, timeout: float | None = None) -> None:
        """Write every waiting point, buffer what could not be written (:meth:`drain`) and stop the writer thread."""
        self.flush(wait=True, timeout=timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with _LOCK:
            if _BATCHERS.get((self.buffer.tracking_uri, self.run_id)) is self:
                del _BATCHERS[(self.buffer.tracking_uri, self.run_id)]
        self.drain()

    # ---- the writer thread -------------------------------------------------------------------------------------

    def _start_locked(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(target=self._write_loop, name=f"spatialspec-mlflow-{self.run_id[:8]}",
                                            daemon=True)
            self._thread.start()

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopping)
                if not self._queue:
                    return
                calls, self._queue = self._queue, []
                self._writing = True
            try:
                self._write(calls)
            finally:
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()

    def _write(self, calls: list[tuple[Any, ...]]) -> None:
        """Write ``calls`` in chunks of at most ``max_points`` points (a call is never split unless it alone exceeds
        the limit); from the first failure on, every call of this batch is kept for :meth:`drain`."""
        done = 0
        while done < len(calls):
            chunk, points = [], 0
            while done + len(chunk) < len(calls) and (
                    not chunk or points + len(calls[done + len(chunk)]) <= self.max_points):
                chunk.append(calls[done + len(chunk)])
                points += len(chunk[-1])
            try:
                if self.buffer.offline or self._failed:  # an earlier batch failed: keep the order, do not try
                    raise _Offline(self.buffer.tracking_uri)
                metrics = [m for call in chunk for m in call]
                for i in range(0, len(metrics), MAX_BATCH_POINTS):
                    self.client.log_batch(self.run_id, metrics=metrics[i:i + MAX_BATCH_POINTS], synchronous=True)
            except Exception as e:  # noqa: BLE001 - every failure is handed to the main thread by drain()
                if is_connection_error(e):
                    self.buffer.mark_offline(e)  # later MLflow calls of the process go to the buffer at once
                with self._cond:
                    self._failed.extend((call, e) for call in calls[done:])
                return
            done += len(chunk)


def batcher_for(client: Any, buffer: TrackingBuffer, experiment: str, run_name: str, run_id: str,
                max_delay: float = MAX_DELAY_S) -> MetricBatcher:
    """The open batcher of run ``run_id`` at ``buffer.tracking_uri``, created on first use (shared by every handler
    logging to that run in this process)."""
    key = (buffer.tracking_uri, run_id)
    with _LOCK:
        batcher = _BATCHERS.get(key)
        if batcher is None:
            batcher = _BATCHERS[key] = MetricBatcher(client, buffer, experiment, run_name, run_id,
                                                     max_delay=max_delay)
        return batcher


def find_batcher(tracking_uri: str, run_id: str) -> MetricBatcher | None:
    """The open batcher of run ``run_id`` at ``tracking_uri``, ``None`` if it has none."""
    with _LOCK:
        return _BATCHERS.get((tracking_uri, run_id))


def flush_all_batchers(timeout: float | None = EXIT_WAIT_S) -> None:
    """Write (or buffer) the points of every open batcher and close them: run at exit, so that a run that ends
    without closing its handler (an exception in training) keeps every point it logged."""
    with _LOCK:
        batchers = list(_BATCHERS.values())
    for batcher in batchers:
        try:
            batcher.close(timeout)
        except Exception as e:  # noqa: BLE001 - at exit: report, do not hide the other runs' points
            import warnings

            warnings.warn(f"MLflow run {batcher.run_id}: points could not be written at exit: {e}", stacklevel=2)


atexit.register(flush_all_batchers)
