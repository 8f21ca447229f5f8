"""Convergence is checked, not assumed: the validation loss of every epoch, whether it was still improving when
training stopped, and (optionally) training until it stops improving.

With the paper's recipe (full batch, 50 epochs, learning rate 1e-3; Saab et al. 2022, Sec. 3.3.2) the smallest
validation loss can fall on the last epoch for other data-model parameters: the model is still improving when
training stops, and conclusions then rest on under-training. A run has *converged* when its validation loss has not
improved during the last ``patience`` epochs of training (:func:`is_converged`); :class:`ConvergenceMonitor` records
the history on every run and, with ``until_converged``, stops training with ignite's
:class:`~ignite.handlers.EarlyStopping` once that holds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from monai.utils import min_version, optional_import

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
EarlyStopping, _ = optional_import("ignite.handlers", "0.4.11", min_version, "EarlyStopping")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["best_epoch", "is_converged", "ConvergenceMonitor"]

logger = logging.getLogger(__name__)


def best_epoch(history: Sequence[tuple[int, float]]) -> int | None:
    """The epoch of the smallest finite value of ``history`` (the first one on ties: a later equal value is no
    improvement), ``None`` when no value is finite.

    Args:
        history: ``(epoch, value)`` pairs in training order, e.g. the validation loss after every epoch.
    """
    best: tuple[int, float] | None = None
    for epoch, value in history:
        if math.isfinite(value) and (best is None or value < best[1]):
            best = (int(epoch), float(value))
    return None if best is None else best[0]


def is_converged(history: Sequence[tuple[int, float]], last_epoch: int, patience: int) -> bool:
    """Whether the value of ``history`` (a validation loss) stopped improving at least ``patience`` epochs before
    training ended: ``last_epoch - best_epoch >= patience``. ``False`` when no value is finite.

    Example:
        >>> history = [(1, 0.9), (2, 0.5), (3, 0.6), (4, 0.55)]
        >>> is_converged(history, last_epoch=4, patience=2), is_converged(history, last_epoch=4, patience=3)
        (True, False)
    """
    best = best_epoch(history)
    return best is not None and int(last_epoch) - best >= int(patience)


class ConvergenceMonitor:
    """Record the validation loss of every validation, report whether the run converged, and with
    ``until_converged`` stop training when the validation loss has not improved for ``patience`` validations.

    Attach it to the trainer (list it in ``train#handlers``); it listens to ``evaluator``'s ``EPOCH_COMPLETED``, where
    the evaluator's metrics are already computed. Early stopping is ignite's
    :class:`~ignite.handlers.EarlyStopping` on the negated loss, which stops the trainer after the epoch in which
    its counter reaches ``patience`` (``best_epoch + patience``, with validation every epoch). At the end of
    training it logs a warning when the run has not converged (:func:`is_converged`).

    Resume: list the monitor in the :class:`~spatialspec.handlers.ResumeHandler`'s ``save_dict`` too. Its state is
    the history, so ``converged`` covers every epoch of an interrupted run; the early-stopping counter and best
    score are rebuilt from it, so an interrupted run stops where an uninterrupted one would. (A run that had already
    stopped early is not continued at all: the ResumeHandler marks its checkpoint ``terminated``.)

    Args:
        evaluator: the validator whose metrics hold ``metric_name``.
        patience: epochs without improvement after which a run counts as converged (and, with
            ``until_converged``, validations without improvement after which training stops).
        until_converged: stop training once converged (at most the trainer's ``max_epochs``).
        metric_name: the validation loss in ``evaluator.state.metrics`` (smaller is better).

    Raises:
        ValueError: if ``patience`` is not an integer >= 1 or ``until_converged`` not a bool.
    """

    def __init__(self, evaluator: Engine, patience: int = 20, until_converged: bool = False,
                 metric_name: str = "val_loss") -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
        if not isinstance(until_converged, bool):  # a string "False" would be true
            raise ValueError(f"until_converged must be True or False, got {until_converged!r}")
        self.evaluator = evaluator
        self.patience = patience
        self.until_converged = until_converged
        self.metric_name = metric_name
        self.history: list[tuple[int, float]] = []
        self._trainer: Engine | None = None
        #: ignite's EarlyStopping with ``until_converged`` (after :meth:`attach`), else ``None``
        self.early_stopping: Any = None

    def attach(self, engine: Engine) -> None:
        """Listen to the evaluator's epochs, stop ``engine`` (the trainer) when converged with ``until_converged``,
        and report at the end of training."""
        self._trainer = engine
        self.evaluator.add_event_handler(Events.EPOCH_COMPLETED, self._record)
        if self.until_converged:
            self.early_stopping = EarlyStopping(patience=self.patience, score_function=self._score, trainer=engine)
            self.evaluator.add_event_handler(Events.EPOCH_COMPLETED, self.early_stopping)
        engine.add_event_handler(Events.COMPLETED, self._report)

    def _score(self, evaluator: Engine) -> float:
        value = float(evaluator.state.metrics[self.metric_name])
        return -value if math.isfinite(value) else -math.inf  # a NaN loss is never an improvement

    def _record(self, evaluator: Engine) -> None:
        if self.metric_name not in evaluator.state.metrics:
            raise KeyError(f"ConvergenceMonitor: the evaluator computes no {self.metric_name!r} (it has "
                           f"{sorted(evaluator.state.metrics)})")
        self.history.append((int(evaluator.state.epoch), float(evaluator.state.metrics[self.metric_name])))

    # ---- what a run reports ----------------------------------------------------------------------------------

    @property
    def best_epoch(self) -> int | None:
        """The epoch of the smallest validation loss so far (``None`` before the first validation)."""
        return best_epoch(self.history)

    @property
    def last_epoch(self) -> int:
        """The trainer's last epoch (the last validated one when not attached)."""
        if self._trainer is not None:
            return int(self._trainer.state.epoch)
        return self.history[-1][0] if self.history else 0

    @property
    def converged(self) -> bool:
        """Whether the validation loss had stopped improving ``patience`` epochs before training ended."""
        return is_converged(self.history, self.last_epoch, self.patience)

    @property
    def stopped_early(self) -> bool:
        """Whether ``until_converged`` ended training before the trainer's ``max_epochs``."""
        return (self.until_converged and self._trainer is not None
                and self.last_epoch < int(self._trainer.state.max_epochs or 0))

    def summary(self) -> dict[str, Any]:
        """``converged``, ``val_loss_best_epoch``, ``epochs_trained``, ``stopped_early`` and ``patience``."""
        return {"converged": self.converged, "val_loss_best_epoch": self.best_epoch,
                "epochs_trained": self.last_epoch, "stopped_early": self.stopped_early, "patience": self.patience}

    def _report(self, engine: Engine) -> None:
        if self.converged:
            return
        best = self.best_epoch
        logger.warning(
            "not converged: the validation loss (%s) was still improving within the last %d epochs (best at epoch "
            "%s of %d); train longer or until converged (--until_converged True)", self.metric_name, self.patience,
            best if best is not None else "none", self.last_epoch)

    # ---- resume ------------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The history, as plain lists (loads with ``torch.load(..., weights_only=True)``)."""
        return {"epochs": [epoch for epoch, _ in self.history], "values": [value for _, value in self.history]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the history and rebuild the early-stopping counter and best score from it (what ignite's
        :class:`~ignite.handlers.EarlyStopping` would hold after those validations)."""
        self.history = [(int(e), float(v)) for e, v in zip(state["epochs"], state["values"])]
        if self.early_stopping is None:
            return
        best = self.best_epoch
        if best is None:  # before the first validation, or after NaN losses only (each one no improvement)
            self.early_stopping.counter = max(len(self.history) - 1, 0)
            self.early_stopping.best_score = -math.inf if self.history else None
            return
        self.early_stopping.counter = sum(1 for epoch, _ in self.history if epoch > best)
        self.early_stopping.best_score = -min(v for _, v in self.history if math.isfinite(v))
