"""Seg-SSL step 2 (Saab et al. 2022, Sec. 4.2.1): pseudo-labels written by step 1's network, read by step 2's data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import CacheDataset, DataLoader
from monai.transforms import Compose, EnsureTyped

from spatialspec.data.subsample import flag_location_labels, location_subset
from spatialspec.ssl import (
    HideUnlabelledd,
    PseudoLabelledDataset,
    PseudoLabelWriter,
    flagged_subset,
    load_pseudo_labels,
    save_pseudo_labels,
)


def _tiny(n: int = 8, side: int = 6, budget: int = 3) -> list[dict]:
    rng = np.random.default_rng(0)
    data = [{"image": rng.normal(size=(1, side, side)).astype(np.float32),
             "label": (rng.random((1, side, side)) > 0.7).astype(np.float32), "y": int(i % 4 != 0)} for i in range(n)]
    return flag_location_labels(data, budget, seed=1)


def _dataset(data: list[dict]) -> CacheDataset:
    transform = Compose([EnsureTyped(keys=["image", "label"], track_meta=False), HideUnlabelledd(keys="label")])
    return CacheDataset(data, transform, cache_rate=1.0, progress=False)


class _Sign(torch.nn.Module):
    """Logits (0, w * x) per pixel: class 1 where w * x > 0."""

    def __init__(self, w: float = 1.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(float(w)))

    def forward(self, x):
        return torch.cat([torch.zeros_like(x), self.w * x], dim=1)


def test_flags_match_the_location_subset():
    data = [{"id": i, "y": int(i < 30)} for i in range(40)]
    flagged = flag_location_labels(data, 10, seed=2)
    assert [e["id"] for e in flagged if e["labelled"]] == [e["id"] for e in location_subset(data, 10, 2)]
    assert all(e["labelled"] == 1 for e in flag_location_labels(data, None))
    assert location_subset(data, None) == data
    assert "labelled" not in data[0]  # copies, not the caller's dicts
    with pytest.raises(ValueError, match="location_labels"):
        location_subset(data, "ten")
    with pytest.raises(ValueError, match="labelled"):
        flag_location_labels(flagged, 5)


def test_hidden_labels_and_flagged_subsets():
    data = _tiny()
    dataset = _dataset(data)
    for i, entry in enumerate(data):
        expected = entry["label"] if entry["labelled"] else np.zeros_like(entry["label"])
        assert np.array_equal(dataset[i]["label"].numpy(), expected)
    labelled, unlabelled = flagged_subset(dataset, data, True), flagged_subset(dataset, data, False)
    assert labelled.indices == [i for i, e in enumerate(data) if e["labelled"]] and len(labelled) == 3
    assert unlabelled.indices == [i for i, e in enumerate(data) if not e["labelled"]]
    with pytest.raises(ValueError, match="entries"):
        flagged_subset(dataset, data[:-1])


def test_pseudo_label_step_on_a_tiny_set(tmp_path):
    data = _tiny()
    dataset = _dataset(data)
    out = tmp_path / "pseudo.npz"
    step2 = PseudoLabelledDataset(dataset, out)  # built before step 1 has run, as MONAI's property checks do
    with pytest.raises(FileNotFoundError, match="pseudo.npz"):
        step2[0]

    network = _Sign(1.0)
    checkpoint = tmp_path / "best.pt"
    torch.save({"model": _Sign(-1.0).state_dict()}, checkpoint)  # step 1's best checkpoint predicts x < 0
    writer = PseudoLabelWriter(DataLoader(dataset, batch_size=3, shuffle=False), out, checkpoint=checkpoint)
    engine = Engine(lambda e, b: None)
    engine.network = network
    writer.attach(engine)
    engine.run([0], max_epochs=1)

    unlabelled = [i for i, e in enumerate(data) if not e["labelled"]]
    indices, masks = load_pseudo_labels(out, n_samples=len(data))
    assert indices.tolist() == unlabelled
    expected = np.stack([(data[i]["image"] < 0).astype(np.uint8) for i in unlabelled])
    assert np.array_equal(masks, expected)
    assert engine.state.metrics["pseudo_labelled"] == len(unlabelled)
    assert network.w.detach().item() == -1.0  # the checkpoint was loaded

    trainer = Engine(lambda e, b: None)
    step2.attach(trainer)
    trainer.run([0], max_epochs=1)  # re-reads the file at start
    for i, entry in enumerate(data):
        want = entry["label"] if entry["labelled"] else (entry["image"] < 0).astype(np.float32)
        item = step2[i]
        assert np.array_equal(item["label"].numpy(), want) and item["label"].dtype == torch.float32


def test_pseudo_label_file_checks(tmp_path):
    path = tmp_path / "p.npz"
    save_pseudo_labels(path, [2, 0], np.zeros((2, 1, 3, 3)), n_samples=4)
    with pytest.raises(ValueError, match="4 training samples"):
        load_pseudo_labels(path, n_samples=5)
    with pytest.raises(ValueError, match="distinct"):
        save_pseudo_labels(path, [1, 1], np.zeros((2, 1, 3, 3)), n_samples=4)
    with pytest.raises(ValueError, match="K = 3"):
        save_pseudo_labels(path, [0, 1, 2], np.zeros((2, 1, 3, 3)), n_samples=4)
    data = _tiny()
    dataset = _dataset(data)
    labelled = next(i for i, e in enumerate(data) if e["labelled"])
    unlabelled = next(i for i, e in enumerate(data) if not e["labelled"])
    step2 = PseudoLabelledDataset(dataset, (np.array([labelled]), np.zeros((1, 1, 6, 6))))
    with pytest.raises(ValueError, match="is labelled but has a pseudo-label"):
        step2[labelled]
    with pytest.raises(ValueError, match="unlabelled but has no pseudo-label"):
        step2[unlabelled]
    wrong = PseudoLabelledDataset(dataset, (np.array([unlabelled]), np.zeros((1, 1, 5, 5))))
    with pytest.raises(ValueError, match="shape"):
        wrong[unlabelled]


def test_pseudo_label_writer_waits_for_every_rank_before_reading_the_checkpoint(tmp_path, monkeypatch):
    """In a data-parallel run only rank 0 writes step 1's checkpoint (and replaces it: remove, then save); the other
    ranks must not read it before every rank has finished step 1."""
    import socket

    from spatialspec.distributed import destroy_distributed

    data = _tiny()
    calls = []
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    real_barrier = torch.distributed.barrier
    monkeypatch.setattr(torch.distributed, "barrier", lambda: calls.append("barrier") or real_barrier())
    checkpoint = tmp_path / "best.pt"
    torch.save({"model": _Sign(-1.0).state_dict()}, checkpoint)
    real_load = torch.load

    def load(*args, **kwargs):
        calls.append("load")
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", load)
    writer = PseudoLabelWriter(DataLoader(_dataset(data), batch_size=3, shuffle=False), tmp_path / "p.npz",
                               checkpoint=checkpoint)
    engine = Engine(lambda e, b: None)
    engine.network = _Sign(1.0)
    writer.attach(engine)
    try:
        engine.run([0], max_epochs=1)
    finally:
        monkeypatch.undo()
        destroy_distributed()
    assert calls[:2] == ["barrier", "load"]
