"""Shared helpers of the tracking tests: a port nothing listens on and a tiny ignite loop logged by
BufferedMLFlowHandler (trainer with per-iteration loss, validator-like per-epoch metrics)."""

from __future__ import annotations

from pathlib import Path

import torch
from ignite.engine import Engine, Events

from spatialspec.tracking import BufferedMLFlowHandler
from tests.ports import free_port

__all__ = ["closed_port", "run_loop", "metric_history", "LOSSES", "EPOCH_METRICS", "LR"]

ITERATIONS, EPOCHS = 3, 2
# the values the loop produces, computed here independently of the handler: iteration i has loss 1 / i, epoch e
# has val_robust_auroc 0.5 + e / 10 and val_overall_auroc 0.6 + e / 10
LOSSES = {i: 1.0 / i for i in range(1, ITERATIONS * EPOCHS + 1)}
EPOCH_METRICS = {"val_robust_auroc": {e: 0.5 + e / 10 for e in range(1, EPOCHS + 1)},
                 "val_overall_auroc": {e: 0.6 + e / 10 for e in range(1, EPOCHS + 1)}}
LR = 0.01


def closed_port() -> int:
    """A port nothing listens on (bound once, then released)."""
    return free_port()


def run_loop(tracking_uri: str, buffer_file: Path, run_name: str = "loop", experiment: str = "exp",
             artifact: Path | None = None, client_hook=None, batching: str = "async",
             optimizer: bool = False, **handler_kwargs) -> BufferedMLFlowHandler:
    """Run ``EPOCHS`` epochs of ``ITERATIONS`` iterations, logged like a bundle's trainer (per-iteration loss, epoch
    metrics, params, the artifact, then the run closed) with the handler's ``batching`` mode; with ``optimizer`` the
    engine has one, whose learning rate MONAI's handler logs every iteration too (``lr_group_0``: ``LR``);
    ``handler_kwargs`` go to the handler (``flush_interval``)."""
    engine = Engine(lambda e, batch: LOSSES[e.state.iteration])
    if optimizer:
        engine.optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)

    @engine.on(Events.EPOCH_COMPLETED)
    def _metrics(e: Engine) -> None:
        e.state.metrics = {k: v[e.state.epoch] for k, v in EPOCH_METRICS.items()}

    handler = BufferedMLFlowHandler(buffer_file=buffer_file, tracking_uri=tracking_uri, experiment_name=experiment,
                                    run_name=run_name, output_transform=lambda x: x, tag_name="train_loss",
                                    artifacts=None if artifact is None else str(artifact),
                                    experiment_param={"level": "seg", "seed": 0}, close_on_complete=True,
                                    batching=batching, **handler_kwargs)
    if client_hook is not None:
        client_hook(handler)
    handler.attach(engine)
    engine.run(range(ITERATIONS), max_epochs=EPOCHS)
    return handler


def metric_history(client, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """Every metric point of a run as ``{key: [(step, value), ...]}`` sorted by step, read back with
    ``MlflowClient.get_metric_history`` (duplicates kept, so a point logged twice shows)."""
    keys = client.get_run(run_id).data.metrics
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key)) for key in sorted(keys)}


def die_after(batches: int, calls: dict[str, int]):
    """A ``client_hook`` for :func:`run_loop`: the handler's client writes ``batches`` ``log_batch`` requests, then
    every request fails as an unreachable store does (``calls["n"]`` counts them), and so does ending the run."""
    from mlflow.exceptions import MlflowException

    def hook(handler):
        real = handler.client.log_batch

        def log_batch(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] > batches:
                raise MlflowException("API request failed: Connection refused")
            return real(*args, **kwargs)

        def set_terminated(*args, **kwargs):
            raise MlflowException("API request failed: Connection refused")

        handler.client.log_batch = log_batch
        handler.client.set_terminated = set_terminated

    return hook
