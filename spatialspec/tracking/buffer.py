"""A local, append-only journal of MLflow calls that could not reach the tracking store, replayed later by
:func:`spatialspec.tracking.sync_buffer` (``spatialspec sync``).

The training runs of the study (Saab et al. 2022, Sec. 3.3.2 and 5) keep going when the tracking server is down:
every MLflow call that fails to connect, and every later one in the same process, is appended to
``mlflow_buffer.jsonl`` as one JSON line. The first failure marks the tracking URI offline for the rest of the
process (no per-call retries: a dead server costs one failed request, not one per iteration); the records are
pushed by ``spatialspec sync`` once the server is back.

Record format (one JSON object a line; ``v`` is :data:`BUFFER_FORMAT`)::

    {"v": 1, "kind": "metrics", "tracking_uri": "http://...", "experiment": "spatialspec", "run_name": "seg-pixel-s0",
     "run_uid": "seg-pixel-s0-1a2b3c4d", "run_id": null, "time": 1700000000000,
     "metrics": [{"key": "val_robust_auroc", "value": 0.7, "timestamp": 1700000000000, "step": 1}]}

``kind`` is ``start`` (``start_time``), ``params`` (``params``: name -> text), ``metrics`` (``metrics``),
``artifacts`` (``paths``: absolute file or folder paths, ``artifact_path``), ``tags`` (``tags``), ``parent``
(``children``: run names in the same experiment that become the run's children) or ``end`` (``status``,
``end_time``). ``run_id`` is the store's run id when the run was created before the store became unreachable;
``run_uid`` identifies the run within the buffer (records of the trainer's and the validator's handlers and of the
study share it) and is kept as the tag ``spatialspec.buffer_uid`` of the synced run, so a replay finds it again.

Each record is written with a single ``write`` of a whole line in append mode (no temporary file: the journal only
grows); a line torn by a kill is the last one, and :func:`read_buffer` skips it with a warning.
"""

from __future__ import annotations

import json
import os
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from .errors import TrackingBufferWarning, is_connection_error

__all__ = ["BUFFER_NAME", "BUFFER_FORMAT", "RECORD_KINDS", "TrackingBuffer", "metric_entry", "read_buffer",
           "reset_tracking_state"]

BUFFER_NAME = "mlflow_buffer.jsonl"
BUFFER_FORMAT = 1
RECORD_KINDS = ("start", "params", "metrics", "artifacts", "tags", "parent", "end")
_REQUIRED = ("kind", "experiment", "run_name", "run_uid")
_T = TypeVar("_T")

# process-wide state, shared by every handler and client of the process
_OFFLINE: dict[str, str] = {}  # tracking URI -> why it was marked offline
_WARNED: set[str] = set()  # buffer files a warning was issued for
_RUN_UIDS: dict[tuple[str, str, str, str], str] = {}  # (buffer, uri, experiment, run name) -> run uid
_RUN_IDS: dict[tuple[str, str, str], str] = {}  # (uri, experiment, run name) -> store run id
_DEFAULT_NAMES: dict[tuple[str, str], str] = {}  # (uri, experiment) -> the name of runs started without one
_PARAMS: dict[tuple[str, str, str], set[str]] = {}  # (uri, experiment, run name) -> params logged or buffered
_STORED: dict[tuple[str, str], set[str]] = {}  # (uri, store run id) -> params this process logged to the store


def reset_tracking_state() -> None:
    """Forget every offline URI, issued warning and remembered run (for tests and long-lived processes that want
    to try a server again); the points of open metric batchers (:mod:`spatialspec.tracking.batch`) are written or
    buffered first."""
    from .batch import flush_all_batchers

    flush_all_batchers()
    for registry in (_OFFLINE, _WARNED, _RUN_UIDS, _RUN_IDS, _DEFAULT_NAMES, _PARAMS, _STORED):
        registry.clear()


def _now_ms() -> int:
    return int(time.time() * 1000)


class TrackingBuffer:
    """The buffer of one tracking URI in one file, and the process's offline state of that URI.

    Args:
        path: the JSON-lines buffer file (created on the first record).
        tracking_uri: the MLflow tracking URI the records were meant for (``spatialspec sync`` replays there by
            default).
    """

    def __init__(self, path: str | os.PathLike, tracking_uri: str) -> None:
        if not str(path):
            raise ValueError("TrackingBuffer: path must name a file")
        self.path = Path(path).absolute()
        self.tracking_uri = str(tracking_uri)

    # ---- offline state -----------------------------------------------------------------------------------------

    @property
    def offline(self) -> bool:
        """Whether a call to this URI has failed in this process (every later call is buffered directly)."""
        return self.tracking_uri in _OFFLINE

    def mark_offline(self, error: BaseException | str) -> None:
        """Mark the URI unreachable for the rest of the process."""
        _OFFLINE.setdefault(self.tracking_uri, " ".join(str(error).split())[:200])

    def attempt(self, action: Callable[[], _T], fallback: Callable[[], Any]) -> _T | None:
        """Run ``action`` (MLflow calls) unless the URI is offline; if it raises a connection error
        (:func:`~spatialspec.tracking.is_connection_error`) mark the URI offline. In both cases ``fallback`` (which
        buffers what ``action`` would have logged) runs instead and ``None`` is returned; other errors propagate."""
        if not self.offline:
            try:
                return action()
            except Exception as e:
                if not is_connection_error(e):
                    raise
                self.mark_offline(e)
        fallback()
        return None

    # ---- run identity ------------------------------------------------------------------------------------------

    def default_run_name(self, experiment: str) -> str:
        """The name of runs started without one (MONAI's ``run_%Y%m%d_%H%M%S``), the same for every handler of the
        process."""
        return _DEFAULT_NAMES.setdefault((self.tracking_uri, experiment), f"run_{time.strftime('%Y%m%d_%H%M%S')}")

    def remember_run(self, experiment: str, run_name: str, run_id: str, default: bool = False) -> None:
        """Record that ``run_name`` is the store's run ``run_id`` (``default``: it is also the run of handlers
        started without a name)."""
        _RUN_IDS[(self.tracking_uri, experiment, run_name)] = run_id
        if default:
            _DEFAULT_NAMES.setdefault((self.tracking_uri, experiment), run_name)

    def known_run_id(self, experiment: str, run_name: str) -> str | None:
        """The store's id of ``run_name`` if a handler of this process created or reopened it, else ``None``."""
        return _RUN_IDS.get((self.tracking_uri, experiment, run_name))

    def note_params(self, experiment: str, run_name: str, names: Iterable[str]) -> None:
        """Record that params ``names`` of the run were logged or buffered by this process."""
        _PARAMS.setdefault((self.tracking_uri, experiment, run_name), set()).update(names)

    def noted_params(self, experiment: str, run_name: str) -> set[str]:
        """The params of the run this process logged or buffered (MONAI logs an engine's ``max_epochs`` only if the
        run has none yet: the trainer's, not the validator's)."""
        return set(_PARAMS.get((self.tracking_uri, experiment, run_name), ()))

    def note_stored_params(self, run_id: str, names: Iterable[str]) -> None:
        """Record that params ``names`` are in the store's run ``run_id`` (this process logged them there)."""
        _STORED.setdefault((self.tracking_uri, run_id), set()).update(names)

    def stored_params(self, run_id: str) -> set[str]:
        """The params this process logged to the store's run ``run_id`` (the store has them: no need to ask)."""
        return set(_STORED.get((self.tracking_uri, run_id), ()))

    def run_uid(self, experiment: str, run_name: str) -> str:
        """The buffer's identifier of a run, the same for every record of the run written by this process."""
        key = (str(self.path), self.tracking_uri, experiment, run_name)
        return _RUN_UIDS.setdefault(key, f"{run_name}-{uuid.uuid4().hex[:12]}")

    # ---- records -----------------------------------------------------------------------------------------------

    def record(self, kind: str, experiment: str, run_name: str, run_id: str | None = None, **payload: Any) -> dict:
        """Append one record (see the module docstring) and warn, once per buffer file, where the records go.

        Raises:
            ValueError: for an unknown ``kind``.
        """
        if kind not in RECORD_KINDS:
            raise ValueError(f"TrackingBuffer.record: kind must be one of {', '.join(RECORD_KINDS)}, got {kind!r}")
        entry = {"v": BUFFER_FORMAT, "kind": kind, "tracking_uri": self.tracking_uri, "experiment": experiment,
                 "run_name": run_name, "run_uid": self.run_uid(experiment, run_name),
                 "run_id": run_id or self.known_run_id(experiment, run_name), "time": _now_ms(), **payload}
        if kind == "params":
            self.note_params(experiment, run_name, payload.get("params", {}))
        line = json.dumps(entry, allow_nan=True, default=str) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
        self._warn_once()
        return entry

    def _warn_once(self) -> None:
        if str(self.path) in _WARNED:
            return
        _WARNED.add(str(self.path))
        reason = _OFFLINE.get(self.tracking_uri, "not reached")
        warnings.warn(f"MLflow tracking at {self.tracking_uri} is unreachable ({reason}); MLflow records are "
                      f"buffered in {self.path} -- push them later with: spatialspec sync --buffer {self.path}",
                      TrackingBufferWarning, stacklevel=3)


def metric_entry(key: str, value: Any, timestamp: int, step: int) -> dict[str, Any]:
    """One metric point of a ``metrics`` record (NaN and infinities are kept: Python's json reads them back)."""
    return {"key": str(key), "value": float(value), "timestamp": int(timestamp), "step": int(step)}


def read_buffer(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a buffer file, in order.

    A last line that is not valid JSON (torn by a kill during its write) is skipped with a warning.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: naming the file and line of any other invalid line or record.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MLflow buffer not found: {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            if number == len(lines):
                warnings.warn(f"{path}:{number}: skipping a torn last line ({e})", TrackingBufferWarning, stacklevel=2)
                continue
            raise ValueError(f"{path}:{number}: not a JSON record: {e}") from None
        if not isinstance(entry, dict):
            raise ValueError(f"{path}:{number}: a record must be a JSON object")
        missing = [name for name in _REQUIRED if not entry.get(name)]
        if missing:
            raise ValueError(f"{path}:{number}: record lacks {', '.join(missing)}")
        if entry.get("v") != BUFFER_FORMAT:
            raise ValueError(f"{path}:{number}: unknown buffer format v={entry.get('v')!r} (expected {BUFFER_FORMAT})")
        if entry["kind"] not in RECORD_KINDS:
            raise ValueError(f"{path}:{number}: unknown record kind {entry['kind']!r}")
        records.append(entry)
    return records
