"""AttachToTrainer: attaches to the trainer the objects a bundle defines elsewhere (a second stage's data set and
objective), so that they listen to it."""

from __future__ import annotations

import pytest
from ignite.engine import Engine, Events

from spatialspec.handlers import AttachToTrainer
from spatialspec.losses import ChannelCrossEntropyLoss
from spatialspec.robust.george import GroupDROObjective
from spatialspec.robust.jtt import UpsampledDataset


class _Recorder:
    def __init__(self) -> None:
        self.engines: list = []

    def attach(self, engine) -> None:
        self.engines.append(engine)


def test_attach_to_trainer_refuses_objects_without_attach():
    with pytest.raises(TypeError, match=r"\['int', 'str'\]"):
        AttachToTrainer([_Recorder(), 3, "x"])
    with pytest.raises(TypeError, match="_NotCallable"):
        AttachToTrainer([type("_NotCallable", (), {"attach": 1})()])


def test_attach_to_trainer_attaches_all(tmp_path):
    recorders = [_Recorder(), _Recorder()]
    objective = GroupDROObjective(ChannelCrossEntropyLoss(reduction="none"), n_groups=2)
    dataset = UpsampledDataset([{"i": 0}, {"i": 1}], tmp_path / "errors.json")
    engine = Engine(lambda e, b: None)
    before = len(engine._event_handlers.get(Events.STARTED, []))
    handler = AttachToTrainer([*recorders, objective, dataset])
    assert handler.handlers == [*recorders, objective, dataset]
    handler.attach(engine)
    assert [r.engines for r in recorders] == [[engine], [engine]]
    assert objective._engine is engine
    # the objective and the dataset each listen to STARTED
    assert len(engine._event_handlers[Events.STARTED]) == before + 2
    assert engine.has_event_handler(objective._report, Events.EPOCH_COMPLETED)
    AttachToTrainer([]).attach(engine)  # nothing to attach is fine
