"""EpochMeans: the epoch means of a composite loss's terms, as trainer metrics (Seg-SSL and Seg-SPL, Sec. 4.2)."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine, Events

from spatialspec.handlers import EpochMeans


def test_means_per_epoch_then_afresh():
    """Two epochs of different lengths: each reports the mean of its own batches only."""
    means = EpochMeans("spl")
    epochs = [[(1.0, 0.5), (3.0, -0.5), (2.0, 0.25)], [(4.0, 1.0), (6.0, 1.0), (8.0, 1.0)]]

    def step(engine, batch):
        ce, similarity = batch
        means.add("ce", torch.tensor(ce))
        means.add("similarity", torch.tensor(similarity, requires_grad=True))  # detached when kept

    engine = Engine(step)
    engine.add_event_handler(Events.EPOCH_COMPLETED, means.report)
    reported = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: reported.append(dict(e.state.metrics)))
    engine.run([batch for epoch in epochs for batch in epoch], max_epochs=2, epoch_length=3)
    assert reported == [{"spl_ce": pytest.approx(2.0), "spl_similarity": pytest.approx(0.25 / 3)},
                        {"spl_ce": pytest.approx(6.0), "spl_similarity": pytest.approx(1.0)}]
    assert means.sums == {} and means.counts == {}
