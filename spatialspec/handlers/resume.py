"""Durable training: an ignite handler that checkpoints everything a run needs to continue (model, optimizer, epoch,
iteration, RNG states, the validator's best metric, the model-selection record and the MLflow run id) after every
epoch, atomically, with the run's fingerprint (:mod:`spatialspec.identity`), and restores it when the same command is
run again.

The paper's runs (50 epochs per level and seed on the synthetic data, Sec. 3.3.2; the real-data runs of Sec. 5) are
long enough that a pre-empted job must not start over: with this handler a rerun continues where the last completed
epoch left off and reaches the metrics an uninterrupted run reaches (same seed, CPU: bit-identical).
"""

from __future__ import annotations

import json
import logging
import random
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointSaver, MLFlowHandler

from spatialspec.errors import InputError
from spatialspec.identity import check_fingerprint, read_fingerprint_file, write_fingerprint_file
from spatialspec.tracking.handler import RUN_ID_STATE, BufferedMLFlowHandler

from .checkpoint_writer import wait_for_checkpoint_writes, write_checkpoint_in_background
from .packing import pack_tensors, unpack_tensors

__all__ = ["ResumeHandler", "get_rng_state", "set_rng_state", "load_resume_checkpoint", "stored_fingerprint",
           "RESUME_FORMAT", "RESUME_WAYS_OUT"]

#: the checkpoint format written: 2 packs the tensors into one flat tensor per dtype (:mod:`.packing`); 1 (one
#: record per tensor) is still read
RESUME_FORMAT = 2
_READ_FORMATS = (1, 2)
#: what a bundle user can do when a run folder holds another run (named in the refusal)
RESUME_WAYS_OUT = ("another --output_dir", "--resume False to train this run from scratch and overwrite it")
logger = logging.getLogger(__name__)


def get_rng_state() -> dict[str, torch.Tensor]:
    """The global RNG states of Python, NumPy, torch (and CUDA, when present) as tensors, so that a checkpoint holding
    them loads with ``torch.load(..., weights_only=True)``."""
    version, py_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    if np_name != "MT19937":
        raise ValueError(f"unsupported NumPy bit generator {np_name!r} (expected MT19937)")
    state = {
        "torch": torch.get_rng_state(),
        "python": torch.tensor([version, *py_state], dtype=torch.int64),
        "python_gauss": torch.tensor([float("nan") if gauss is None else gauss], dtype=torch.float64),
        "numpy": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
        "numpy_pos": torch.tensor([np_pos, np_has_gauss], dtype=torch.int64),
        "numpy_gauss": torch.tensor([np_gauss], dtype=torch.float64),
    }
    if torch.cuda.is_available():
        for i, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            state[f"cuda{i}"] = cuda_state
    return state


def set_rng_state(state: Mapping[str, torch.Tensor]) -> None:
    """Restore the RNG states written by :func:`get_rng_state`."""
    torch.set_rng_state(state["torch"])
    python = [int(v) for v in state["python"].tolist()]
    gauss = float(state["python_gauss"][0])
    random.setstate((python[0], tuple(python[1:]), None if np.isnan(gauss) else gauss))
    pos, has_gauss = (int(v) for v in state["numpy_pos"].tolist())
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), pos, has_gauss,
                         float(state["numpy_gauss"][0])))
    cuda_states = [state[k] for k in sorted(k for k in state if k.startswith("cuda"))]
    if cuda_states and torch.cuda.is_available():
        for i, cuda_state in enumerate(cuda_states[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, i)


def load_resume_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """Read a resume checkpoint with ``torch.load(..., weights_only=True)`` (no code is unpickled).

    Args:
        path: the checkpoint.
        mmap: map the tensors instead of reading them (a cheap look at the fingerprint and epoch).

    Raises:
        InputError: if ``path`` is not a resume checkpoint of a known format.
    """
    path = Path(path)
    wait_for_checkpoint_writes()  # a checkpoint this process took is read once it is written
    if path.is_file() and not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise InputError(f"{path} is not a spatialspec resume checkpoint (not a file written by torch.save); delete "
                         "it or start over with --resume False")
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except Exception:
            if not mmap:
                raise
            # mmap reads only torch's zip format: load the file plainly for its real state or error
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated file, another program's file, a pickle with code in it
        raise InputError(f"{path} is not a readable spatialspec resume checkpoint ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else 'unreadable'}); delete it or start over with "
                         "--resume False") from None
    if not isinstance(state, dict) or state.get("format") not in _READ_FORMATS:
        raise InputError(f"{path} is not a spatialspec resume checkpoint (format "
                         f"{' or '.join(map(str, _READ_FORMATS))})")
    if state["format"] == 2:
        tensors = state.pop("tensors", None)
        if not isinstance(tensors, dict):
            raise InputError(f"{path} is not a readable spatialspec resume checkpoint (format 2 without its tensors); "
                             "delete it or start over with --resume False")
        try:
            state = unpack_tensors(state, tensors, copy=not mmap)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:
            raise InputError(f"{path} is not a readable spatialspec resume checkpoint (its packed tensors do not "
                             f"unpack: {type(e).__name__}); delete it or start over with --resume False") from None
    return state


def stored_fingerprint(state: Mapping[str, Any]) -> dict[str, Any] | None:
    """The run fingerprint a resume checkpoint holds (stored as JSON text), ``None`` for an older checkpoint."""
    text = state.get("fingerprint")
    return json.loads(text) if isinstance(text, str) and text else None


def _plain_mlflow_handlers(engines: Sequence[Engine]) -> list[MLFlowHandler]:
    """MONAI's own :class:`~monai.handlers.MLFlowHandler` objects attached to ``engines`` (``--tracking mlflow``).

    The one private access of this module, for that class alone. MONAI's handler keeps its run in ``cur_run`` and
    publishes it nowhere, MONAI's ``--tracking`` patch appends it to ``train#handlers`` / ``validate#handlers``
    without a config id (so a bundle cannot pass it to :class:`ResumeHandler`), and ignite keeps no public list of
    an engine's handlers: ``engine._event_handlers`` is read. A
    :class:`~spatialspec.tracking.BufferedMLFlowHandler` (``--tracking bundles/tracking_mlflow.json``, the study)
    needs none of this: it shares its run id through ``engine.state``
    (:data:`~spatialspec.tracking.handler.RUN_ID_STATE`).
    """
    found: dict[int, MLFlowHandler] = {}
    for engine in engines:
        for handlers in getattr(engine, "_event_handlers", {}).values():
            for entry in handlers:
                owner = getattr(entry[0], "__self__", None)
                if isinstance(owner, MLFlowHandler) and not isinstance(owner, BufferedMLFlowHandler):
                    found.setdefault(id(owner), owner)
    return list(found.values())


def _legacy_selection(state: Mapping[str, Any], save_dict: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The stored objects of ``state`` with the record of an older checkpoint's ``checkpoint_savers`` list (one per
    CheckpointSaver of the evaluator) mapped onto the one ``save_dict`` entry that is a checkpoint saver.

    Raises:
        InputError: in one line, when the older records cannot be mapped onto exactly one entry.
    """
    objects = dict(state["objects"])
    records = state.get("checkpoint_savers")
    if records is None:
        return objects
    targets = [name for name, obj in save_dict.items() if name not in objects and isinstance(obj, CheckpointSaver)]
    if not targets:
        return objects
    if len(records) != 1 or len(targets) != 1:
        raise InputError(f"{path} was written by an older spatialspec with {len(records)} checkpoint-saver records, "
                         f"which cannot be mapped onto save_dict entries {targets}; resume it with that version or "
                         "start over with --resume False")
    record: dict[str, Any] = {"saved": [list(item) for item in records[0]]}
    if state.get("evaluator"):  # the evaluator's best is the saver's: one rule decides both
        record.update(best_metric=state["evaluator"]["best_metric"],
                      best_metric_epoch=state["evaluator"]["best_metric_epoch"])
    objects[targets[0]] = record
    return objects


def _is_rank0() -> bool:
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class ResumeHandler:
    """Save the training state after every epoch and continue from it when the trainer starts again.

    Every ``EPOCH_COMPLETED`` (after the validation handler, so the RNG states are those the next epoch starts from)
    it writes ``checkpoint_file`` atomically (a temporary file, then ``os.replace``: a kill during the write leaves
    the previous checkpoint intact), from a background thread while the next epoch trains (every reader in the
    process waits for it; the trainer's ``COMPLETED`` too). On ``STARTED``, if the file exists, it restores the
    objects of ``save_dict``, the trainer's epoch and iteration, the RNG states and the ``evaluator``'s best metric and
    epoch. List the model-selection saver (:class:`~spatialspec.handlers.SelectionCheckpointSaver`, the bundles'
    ``validate#saver``) in ``save_dict`` so that ``model.pt`` stays the best of all epochs. A finished run's
    checkpoint holds ``epoch == max_epochs``: rerunning it trains nothing.

    MLflow: the run the interrupted attempt logged to is stored and handed to the tracking handlers of the trainer
    and the evaluator, so the rerun continues the same run: through ``engine.state.mlflow_run_id``
    (:data:`~spatialspec.tracking.handler.RUN_ID_STATE`), which :class:`~spatialspec.tracking.BufferedMLFlowHandler`
    reads when it starts and sets once its run is open; MONAI's plain ``MLFlowHandler`` (``--tracking mlflow``)
    is given the run directly (see :func:`_plain_mlflow_handlers`). Attach this handler before the tracking
    handlers (the bundles list it in ``train#handlers``; MONAI's ``--tracking`` patch appends its MLflow handlers
    after it). In distributed runs every rank loads, rank 0 alone saves.

    A checkpoint of an older spatialspec (with a ``checkpoint_savers`` list instead of a ``save_dict`` entry) still
    loads: its one record is mapped onto the ``save_dict`` entry that is a checkpoint saver.

    Run identity (:mod:`spatialspec.identity`): with a ``fingerprint``, the checkpoint stores it and the run only
    resumes a checkpoint (or overwrites a ``model.pt``, through ``fingerprint_file``) made by a run with an equal
    fingerprint. The check happens when the handler is built, which the bundles do at initialisation (their
    ``initialize`` list reaches ``train#handlers``), so a mismatch stops the run before any stage trains, with one
    :class:`~spatialspec.errors.RunIdentityError` naming the fields that differ; nothing of the old run is touched.
    ``fingerprint_file`` (``models/fingerprint.json``, beside ``model.pt``) is written when the trainer starts.

    Args:
        checkpoint_file: where the state is kept, e.g. ``<output_dir>/resume/latest.pt``.
        save_dict: the stateful objects (``state_dict`` / ``load_state_dict``), e.g. ``{"network": ...,
            "optimizer": ..., "convergence": ..., "selection": <the SelectionCheckpointSaver>}``.
        evaluator: the validator whose ``best_metric`` / ``best_metric_epoch`` are kept, or ``None``.
        enabled: ``False`` starts over (``--resume False`` on the bundles): nothing is loaded or checked, and the
            run's own checkpoints and fingerprint file replace the folder's old ones.
        fingerprint: the run's fingerprint (:func:`spatialspec.identity.run_fingerprint`), or ``None`` to resume
            without checking identity.
        fingerprint_file: the file naming the run that wrote ``model.pt``, or ``None``.

    Raises:
        RunIdentityError: at construction, when ``checkpoint_file`` or ``fingerprint_file`` belongs to a run with
            another fingerprint (or to one that recorded none).
    """

    def __init__(self, checkpoint_file: str | Path, save_dict: Mapping[str, Any], evaluator: Engine | None = None,
                 enabled: bool = True, fingerprint: Mapping[str, Any] | None = None,
                 fingerprint_file: str | Path | None = None) -> None:
        if not save_dict:
            raise ValueError("save_dict must name at least one object to checkpoint")
        for name, obj in save_dict.items():
            if not (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")):
                raise ValueError(f"save_dict[{name!r}] has no state_dict/load_state_dict")
        self.checkpoint_file = Path(checkpoint_file)
        self.save_dict = dict(save_dict)
        self.evaluator = evaluator
        self.enabled = bool(enabled)
        self.fingerprint = dict(fingerprint) if fingerprint is not None else None
        self.fingerprint_file = Path(fingerprint_file) if fingerprint_file is not None else None
        self._trainer: Engine | None = None
        self._pending: Future | None = None
        self.resumed_from: int | None = None
        if self.enabled:
            self.check_identity()

    def check_identity(self) -> None:
        """Refuse a checkpoint or ``model.pt`` of another run (see the class docstring); nothing is written.

        Raises:
            RunIdentityError: naming the folder, the fields that differ and the ways out.
        """
        if self.fingerprint is None:
            return
        if self.checkpoint_file.is_file():
            state = load_resume_checkpoint(self.checkpoint_file, mmap=True)
            check_fingerprint(stored_fingerprint(state), self.fingerprint,
                              f"the resume checkpoint {self.checkpoint_file}", RESUME_WAYS_OUT)
        if self.fingerprint_file is not None and self.fingerprint_file.is_file():
            check_fingerprint(read_fingerprint_file(self.fingerprint_file), self.fingerprint,
                              f"the model in {self.fingerprint_file.parent}", RESUME_WAYS_OUT)

    def attach(self, engine: Engine) -> None:
        """Load on ``STARTED`` (unless disabled), save on every ``EPOCH_COMPLETED`` of ``engine`` (the trainer) and
        when it is terminated early; write the fingerprint file on ``STARTED``."""
        self._trainer = engine
        if self.enabled:
            engine.add_event_handler(Events.STARTED, self.load)
        # a run started over (enabled False) is made durable too: its checkpoints replace the old run's
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.save)
        # early stopping ended the run: a rerun must not train on (it is finished, like one at max_epochs)
        engine.add_event_handler(Events.TERMINATE, self._save_terminated)
        # the run's last checkpoint is on disk when the trainer returns
        engine.add_event_handler(Events.COMPLETED, self.wait)
        if self.fingerprint is not None and self.fingerprint_file is not None:
            engine.add_event_handler(Events.STARTED, self._write_fingerprint)

    def _write_fingerprint(self, engine: Engine) -> None:
        if _is_rank0() and self.fingerprint is not None and self.fingerprint_file is not None:
            write_fingerprint_file(self.fingerprint_file, self.fingerprint)

    # ---- what is saved besides save_dict ---------------------------------------------------------------------

    def _engines(self) -> list[Engine]:
        return [e for e in (self._trainer, self.evaluator) if e is not None]

    def tracking_run_id(self) -> str:
        """The MLflow run the tracking handlers of the trainer and the evaluator log to, ``""`` if none is open."""
        engines = self._engines()
        for engine in engines:
            run_id = getattr(engine.state, RUN_ID_STATE, None)
            if run_id:
                return str(run_id)
        for handler in _plain_mlflow_handlers(engines):
            if getattr(handler, "cur_run", None) is not None:
                return str(handler.cur_run.info.run_id)
        return ""

    def state_dict(self, engine: Engine) -> dict[str, Any]:
        """Everything :meth:`load` restores, as tensors and plain Python values."""
        evaluator = {}
        if self.evaluator is not None:
            best = self.evaluator.state.best_metric
            evaluator = {"best_metric": float(best), "best_metric_epoch": int(self.evaluator.state.best_metric_epoch)}
        return {
            "format": RESUME_FORMAT,
            "epoch": int(engine.state.epoch),
            "iteration": int(engine.state.iteration),
            "max_epochs": int(engine.state.max_epochs),
            "objects": {name: obj.state_dict() for name, obj in self.save_dict.items()},
            "rng": get_rng_state(),
            "evaluator": evaluator,
            "mlflow_run_id": self.tracking_run_id(),
            # JSON text, so that the checkpoint still loads weights-only
            "fingerprint": json.dumps(self.fingerprint) if self.fingerprint is not None else "",
        }

    def save(self, engine: Engine, terminated: bool = False) -> None:
        """Take the checkpoint and have it written atomically (rank 0 only); ``terminated`` marks a run stopped
        before ``max_epochs`` (early stopping), which a rerun does not continue. Its tensors are packed (format 2,
        :func:`~spatialspec.handlers.packing.pack_tensors`): one record per dtype instead of one per tensor. The
        packed copy is written by a background thread (:mod:`~spatialspec.handlers.checkpoint_writer`) while the
        next epoch trains; the previous write is waited for first, and its error re-raised."""
        if not _is_rank0():
            return
        state, tensors = pack_tensors({**self.state_dict(engine), "terminated": bool(terminated)})
        self.wait()
        self._pending = write_checkpoint_in_background(self.checkpoint_file, {**state, "tensors": tensors})

    def wait(self, engine: Engine | None = None) -> None:
        """Block until the last checkpoint this handler took is written; re-raises the error of a failed write."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _save_terminated(self, engine: Engine) -> None:
        self.save(engine, terminated=True)

    def load(self, engine: Engine) -> None:
        """Restore the last checkpoint, if there is one, and make ``engine`` continue after its epoch."""
        if not self.checkpoint_file.is_file():
            return
        state = load_resume_checkpoint(self.checkpoint_file)
        if self.fingerprint is not None:  # the file may have changed since construction
            check_fingerprint(stored_fingerprint(state), self.fingerprint,
                              f"the resume checkpoint {self.checkpoint_file}", RESUME_WAYS_OUT)
        objects = _legacy_selection(state, self.save_dict, self.checkpoint_file)
        missing = sorted(set(self.save_dict) - set(objects))
        if missing:
            raise ValueError(f"{self.checkpoint_file} holds no state for {missing}")
        if state["epoch"] > engine.state.max_epochs:
            raise ValueError(f"{self.checkpoint_file} is at epoch {state['epoch']}, beyond this run's max_epochs "
                             f"{engine.state.max_epochs}")
        for name, obj in self.save_dict.items():
            obj.load_state_dict(objects[name])
        set_rng_state(state["rng"])
        engine.state.epoch = state["epoch"]
        engine.state.iteration = state["iteration"]
        if self.evaluator is not None and state["evaluator"]:
            self.evaluator.state.best_metric = state["evaluator"]["best_metric"]
            self.evaluator.state.best_metric_epoch = state["evaluator"]["best_metric_epoch"]
        self._continue_tracking_run(state["mlflow_run_id"])
        self.resumed_from = state["epoch"]
        if state.get("terminated", False):
            engine.terminate()  # stopped early last time: nothing more to train
        logger.warning("resumed from %s at epoch %d of %d", self.checkpoint_file, state["epoch"],
                       engine.state.max_epochs)

    def _continue_tracking_run(self, run_id: str) -> None:
        """Hand ``run_id`` to the tracking handlers, which start after this handler on the same events."""
        if not run_id:
            return
        engines = self._engines()
        for engine in engines:
            setattr(engine.state, RUN_ID_STATE, run_id)
        for handler in _plain_mlflow_handlers(engines):
            if getattr(handler, "cur_run", None) is not None:
                continue
            try:
                handler.cur_run = handler.client.get_run(run_id)
            except Exception as e:  # an unreachable server: the handler finds or creates its run itself
                warnings.warn(f"could not reopen MLflow run {run_id} to resume it: {e}", stacklevel=2)
