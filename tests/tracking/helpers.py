"""Shared helpers of the tracking tests: a port nothing listens on and a tiny ignite loop logged by
BufferedMLFlowHandler (trainer with per-iteration loss, validator-like per-epoch metrics)."""

from __future__ import annotations

from pathlib import Path

from ignite.engine import Engine, Events

from spatialspec.tracking import BufferedMLFlowHandler
from tests.ports import free_port

__all__ = ["closed_port", "run_loop", "LOSSES", "EPOCH_METRICS"]

ITERATIONS, EPOCHS = 3, 2
# the values the loop produces, computed here independently of the handler: iteration i has loss 1 / i, epoch e
# has val_robust_auroc 0.5 + e / 10 and val_overall_auroc 0.6 + e / 10
LOSSES = {i: 1.0 / i for i in range(1, ITERATIONS * EPOCHS + 1)}
EPOCH_METRICS = {"val_robust_auroc": {e: 0.5 + e / 10 for e in range(1, EPOCHS + 1)},
                 "val_overall_auroc": {e: 0.6 + e / 10 for e in range(1, EPOCHS + 1)}}


def closed_port() -> int:
    """A port nothing listens on (bound once, then released)."""
    return free_port()


def run_loop(tracking_uri: str, buffer_file: Path, run_name: str = "loop", experiment: str = "exp",
             artifact: Path | None = None, client_hook=None) -> BufferedMLFlowHandler:
    """Run ``EPOCHS`` epochs of ``ITERATIONS`` iterations, logged like a bundle's trainer (per-iteration loss, epoch
    metrics, params, the artifact, then the run closed)."""
    engine = Engine(lambda e, batch: LOSSES[e.state.iteration])

    @engine.on(Events.EPOCH_COMPLETED)
    def _metrics(e: Engine) -> None:
        e.state.metrics = {k: v[e.state.epoch] for k, v in EPOCH_METRICS.items()}

    handler = BufferedMLFlowHandler(buffer_file=buffer_file, tracking_uri=tracking_uri, experiment_name=experiment,
                                    run_name=run_name, output_transform=lambda x: x, tag_name="train_loss",
                                    artifacts=None if artifact is None else str(artifact),
                                    experiment_param={"level": "seg", "seed": 0}, close_on_complete=True)
    if client_hook is not None:
        client_hook(handler)
    handler.attach(engine)
    engine.run(range(ITERATIONS), max_epochs=EPOCHS)
    return handler
