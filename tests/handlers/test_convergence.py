"""Convergence checks and training until converged (spatialspec.handlers.convergence), on scripted validation losses."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Engine, Events

from spatialspec.handlers import ConvergenceMonitor, best_epoch, is_converged


@pytest.mark.parametrize("history, best", [
    ([], None), ([(1, math.nan)], None), ([(1, 0.5), (2, 0.4), (3, 0.4)], 2),  # a tie is no improvement
    ([(1, math.nan), (2, 0.9), (3, 1.0)], 2), ([(3, 0.2), (4, 0.1)], 4)])
def test_best_epoch(history, best):
    assert best_epoch(history) == best


@pytest.mark.parametrize("last, patience, converged", [(48, 20, True), (47, 20, False), (30, 2, True),
                                                       (30, 3, False), (28, 1, False)])
def test_is_converged(last, patience, converged):
    history = [(e, 1.0 / e) for e in range(1, 29)] + [(29, 1.0), (30, 0.5)]  # best at epoch 28
    assert is_converged(history, last, patience) == converged


def test_is_converged_without_a_finite_loss():
    assert not is_converged([], 10, 1) and not is_converged([(1, math.nan)], 10, 1)


def _engines(losses: list[float], max_epochs: int, patience: int, until_converged: bool = True,
             state: dict | None = None):
    """A trainer whose every epoch runs an evaluator reporting the next scripted validation loss."""
    evaluator = Engine(lambda engine, batch: None)
    evaluator.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(
        val_loss=losses[e.state.epoch - 1]))
    trainer = Engine(lambda engine, batch: None)

    def validate(engine: Engine) -> None:  # what MONAI's evaluator.run(global_epoch) ends with
        evaluator.state.epoch = engine.state.epoch
        evaluator.fire_event(Events.EPOCH_COMPLETED)

    trainer.add_event_handler(Events.EPOCH_COMPLETED, validate)
    monitor = ConvergenceMonitor(evaluator, patience=patience, until_converged=until_converged)
    if state is not None:  # what ResumeHandler does when the trainer starts: objects first, then the epoch
        def resume(engine: Engine) -> None:
            monitor.load_state_dict(state)
            engine.state.epoch = state["epochs"][-1]
            engine.state.iteration = engine.state.epoch
        trainer.add_event_handler(Events.STARTED, resume)
    monitor.attach(trainer)
    epochs_run = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs_run.append(e.state.epoch))
    trainer.run([0], max_epochs=max_epochs)
    return trainer, monitor, epochs_run


LOSSES = [1.0, 0.8, 0.6, 0.7, 0.65, 0.9, 0.5, 0.4, 0.3, 0.2]


def test_stops_after_patience_epochs_without_improvement():
    trainer, monitor, epochs_run = _engines(LOSSES, max_epochs=10, patience=3)
    # best 0.6 at epoch 3; epochs 4, 5, 6 do not improve: stop after epoch 6
    assert epochs_run == [1, 2, 3, 4, 5, 6] and trainer.state.epoch == 6
    assert monitor.summary() == {"converged": True, "val_loss_best_epoch": 3, "epochs_trained": 6,
                                 "stopped_early": True, "patience": 3}


def test_without_until_converged_trains_every_epoch_and_flags():
    trainer, monitor, epochs_run = _engines(LOSSES, max_epochs=10, patience=3, until_converged=False)
    assert epochs_run == list(range(1, 11))
    assert monitor.best_epoch == 10 and not monitor.converged and not monitor.stopped_early


def test_never_converging_run_stops_at_max_epochs():
    trainer, monitor, _ = _engines([1.0 / e for e in range(1, 9)], max_epochs=8, patience=2)
    assert trainer.state.epoch == 8 and not monitor.converged and not monitor.stopped_early


def test_resume_rebuilds_the_early_stopping_counter():
    # interrupted after epoch 4 (best at 3, one epoch without improvement): with patience 3 two more epochs without
    # improvement stop it after epoch 6, as the uninterrupted run above
    _, first, _ = _engines(LOSSES, max_epochs=4, patience=3)
    state = first.state_dict()
    assert state == {"epochs": [1, 2, 3, 4], "values": pytest.approx(LOSSES[:4])}
    trainer, monitor, epochs_run = _engines(LOSSES, max_epochs=10, patience=3, state=state)
    assert epochs_run == [5, 6] and monitor.best_epoch == 3 and monitor.converged
    assert [e for e, _ in monitor.history] == [1, 2, 3, 4, 5, 6]


def test_resume_state_survives_weights_only_and_rebuilds_ignite_state():
    """The state round-trips through torch.save / torch.load(weights_only=True), as the ResumeHandler stores it, and
    gives ignite's EarlyStopping the counter and best score the uninterrupted run had (stopping such a finished run
    again is the ResumeHandler's `terminated` mark, not the monitor's)."""
    import io

    _, first, _ = _engines(LOSSES, max_epochs=10, patience=3)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    monitor = ConvergenceMonitor(Engine(lambda engine, batch: None), patience=3, until_converged=True)
    monitor.attach(Engine(lambda engine, batch: None))
    monitor.load_state_dict(state)
    assert monitor.history == first.history and monitor.best_epoch == 3
    assert (monitor.early_stopping.counter, monitor.early_stopping.best_score) == (3, -0.6)
    assert (first.early_stopping.counter, first.early_stopping.best_score) == (3, -0.6)
    # NaN losses only: every validation after the first counts as no improvement, as in ignite
    monitor.load_state_dict({"epochs": [1, 2, 3], "values": [math.nan] * 3})
    assert (monitor.early_stopping.counter, monitor.early_stopping.best_score) == (2, -math.inf)
    # without until_converged there is no early stopping to rebuild
    plain = ConvergenceMonitor(Engine(lambda engine, batch: None), patience=3)
    plain.load_state_dict(state)
    assert plain.early_stopping is None and plain.best_epoch == 3


def test_not_converged_warning_is_logged(caplog):
    with caplog.at_level("WARNING", logger="spatialspec.handlers.convergence"):
        _engines([1.0 / e for e in range(1, 6)], max_epochs=5, patience=2, until_converged=False)
    assert "not converged" in caplog.text and "best at epoch 5 of 5" in caplog.text


def test_errors():
    evaluator = Engine(lambda engine, batch: None)
    with pytest.raises(ValueError, match="patience"):
        ConvergenceMonitor(evaluator, patience=0)
    with pytest.raises(ValueError, match="until_converged"):
        ConvergenceMonitor(evaluator, until_converged="False")
    monitor = ConvergenceMonitor(evaluator, metric_name="val_dice")
    trainer = Engine(lambda engine, batch: None)
    monitor.attach(trainer)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: evaluator.fire_event(Events.EPOCH_COMPLETED))
    with pytest.raises(KeyError, match="val_dice"):
        trainer.run([0], max_epochs=1)
