"""What the first-stage writers of the binary-label baselines (:mod:`spatialspec.robust.jtt`,
:mod:`spatialspec.robust.george`) read from the ERM trainer they listen to."""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["network_of"]


def network_of(engine: Any) -> nn.Module:
    """The network a MONAI ``SupervisedTrainer`` trains (``engine.network``).

    Raises:
        AttributeError: if the engine has none (the handler was attached to a plain ignite engine).
    """
    network = getattr(engine, "network", None)
    if network is None:
        raise AttributeError("the engine has no network: attach this handler to a MONAI SupervisedTrainer")
    return network
