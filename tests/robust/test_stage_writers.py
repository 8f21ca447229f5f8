"""The handlers that end the ERM stage of JTT and GEORGE (Saab et al. 2022, App. A.2), on a tiny MONAI ResNet
trained for one epoch inside a real SupervisedTrainer; their files are checked against the network's outputs and
embeddings computed here independently (eval mode, own forward hook). Then GEORGE's two stages as its bundle wires
them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedTrainer
from monai.networks.nets import ResNet
from sklearn.metrics import normalized_mutual_info_score
from threadpoolctl import threadpool_limits

from spatialspec.handlers import AttachToTrainer
from spatialspec.losses import ChannelCrossEntropyLoss
from spatialspec.robust.george import (
    GeorgeClusterer,
    GeorgeGroupsWriter,
    GroupDROObjective,
    GroupLabelledDataset,
    InferredGroups,
)
from spatialspec.robust.jtt import JTTErrorSetWriter, UpsampledDataset, load_error_set

SIDE = 16


@pytest.fixture(autouse=True)
def _one_thread():
    """The tiny convolutions and clusterings run about 20x faster on one thread than on cores shared with other
    processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)


def _network() -> ResNet:
    torch.manual_seed(0)
    return ResNet(block="basic", layers=[1, 1, 1, 1], block_inplanes=[4, 8, 8, 8], spatial_dims=2,
                  n_input_channels=1, num_classes=2)


def _data(n_unique: int, n_pairs: int, seed: int, with_s: bool = True) -> list[dict]:
    """``n_unique`` random images with random labels, then ``n_pairs`` images that appear twice with labels 0 and 1
    (the network gives both copies the same prediction, so one of each pair is always an error)."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(n_unique + n_pairs, 1, SIDE, SIDE, generator=gen)
    images[: n_unique // 2] += 1.0  # some structure the network can pick up
    labels = (torch.arange(n_unique) < n_unique // 2).long().tolist()
    items = [{"image": images[i], "label": labels[i]} for i in range(n_unique)]
    for j in range(n_pairs):
        items += [{"image": images[n_unique + j], "label": 0}, {"image": images[n_unique + j], "label": 1}]
    for i, item in enumerate(items):
        item["y"] = item["label"]
        if with_s:
            item["s"] = (i * 7) % 3 % 2
    return items


def _loader(items: list[dict], batch_size: int = 5) -> DataLoader:
    return DataLoader(Dataset(items), batch_size=batch_size, shuffle=False)


def _trainer(network: torch.nn.Module, items: list[dict], handlers: list) -> SupervisedTrainer:
    return SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=1, train_data_loader=_loader(items, 4), network=network,
        optimizer=torch.optim.SGD(network.parameters(), lr=0.05), loss_function=torch.nn.CrossEntropyLoss(),
        train_handlers=handlers)


def _eval_logits_and_embeddings(network: ResNet, items: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Logits and the penultimate (avgpool) features of every item, eval mode, with a hook of the test's own."""
    images = torch.stack([item["image"] for item in items])
    features = []
    handle = network.avgpool.register_forward_hook(lambda m, i, o: features.append(o.detach().flatten(1)))
    network.eval()
    try:
        with torch.no_grad():
            logits = network(images)
    finally:
        handle.remove()
    return logits.numpy(), features[0].numpy().astype(np.float64)


# ---------------------------------------------------------------------------------------------------------------
# JTTErrorSetWriter
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("lambda_up", [-1, 2])
def test_jtt_error_set_writer(tmp_path, lambda_up):
    items = _data(n_unique=10, n_pairs=3, seed=0)
    network = _network()
    path = tmp_path / "stage1" / "jtt_errors.json"
    writer = JTTErrorSetWriter(_loader(items), path, label_key="y", lambda_up=lambda_up)
    trainer = _trainer(network, items, [writer])
    trainer.run()
    assert network.training  # the writer restores the mode it found

    logits, _ = _eval_logits_and_embeddings(network, items)
    labels = np.array([item["y"] for item in items])
    expected = np.flatnonzero(logits.argmax(axis=1) != labels)
    n, e = len(items), len(expected)
    assert e >= 3  # one error per duplicated pair at least
    record = json.loads(path.read_text())
    assert record["errors"] == expected.tolist()
    assert record["n_samples"] == n == 16 and record["n_errors"] == e
    assert load_error_set(path, n_samples=n).tolist() == expected.tolist()
    extra = max(int((n - e) / e) - 1, 0) if lambda_up == -1 else lambda_up
    assert record["copies_per_error"] == 1 + extra
    assert record["lambda_up"] == lambda_up and record["erm_epochs"] == 1
    assert record["erm_train_accuracy"] == pytest.approx(1 - e / n)
    assert trainer.state.metrics["jtt_error_set_size"] == e
    # the second stage reads it: every error appears copies_per_error times
    upsampled = UpsampledDataset(items, path, lambda_up=lambda_up)
    assert len(upsampled) == n + e * extra


def test_jtt_error_set_writer_needs_label_and_network(tmp_path):
    items = _data(n_unique=6, n_pairs=1, seed=1)
    network = _network()
    writer = JTTErrorSetWriter(_loader(items), tmp_path / "e.json", label_key="missing")
    with pytest.raises(KeyError, match="'missing'"):
        _trainer(network, items, [writer]).run()
    assert not (tmp_path / "e.json").exists()
    with pytest.raises(AttributeError, match="no network"):
        JTTErrorSetWriter(_loader(items), tmp_path / "e.json")(Engine(lambda e, b: None))


# ---------------------------------------------------------------------------------------------------------------
# GeorgeGroupsWriter
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("with_s", [True, False])
def test_george_groups_writer(tmp_path, with_s):
    train = _data(n_unique=16, n_pairs=2, seed=2, with_s=with_s)
    val = _data(n_unique=6, n_pairs=1, seed=3, with_s=with_s)
    network = _network()
    clusterer = GeorgeClusterer(reducer="pca", k_range=range(2, 4), seed=0)
    path = tmp_path / "george_groups.json"
    writer = GeorgeGroupsWriter({"training": _loader(train), "validation": _loader(val, 3)}, path, clusterer)
    trainer = _trainer(network, train, [writer])
    trainer.run()

    inferred = InferredGroups.load(path)
    assert set(inferred.groups) == {"training", "validation"}
    assert len(inferred.groups["training"]) == len(train) == 20
    assert len(inferred.groups["validation"]) == len(val) == 8
    assert inferred.n_groups == clusterer.n_groups == sum(c["k"] for c in inferred.clusters)
    assert [c["label"] for c in inferred.clusters] == [0, 1]
    assert 4 <= inferred.n_groups <= 6  # both classes have >= 4 samples: 2 or 3 clusters each
    assert trainer.state.metrics["george_n_groups"] == inferred.n_groups

    # the groups are those of the fitted clusterer on the penultimate-layer embeddings, computed here
    y_train = np.array([item["y"] for item in train])
    y_val = np.array([item["y"] for item in val])
    _, emb_train = _eval_logits_and_embeddings(network, train)
    _, emb_val = _eval_logits_and_embeddings(network, val)
    assert inferred.groups["training"] == clusterer.predict(emb_train, y_train).tolist()
    assert inferred.groups["validation"] == clusterer.predict(emb_val, y_val).tolist()
    k0 = inferred.clusters[0]["k"]
    train_ids = np.array(inferred.groups["training"])
    assert set(train_ids[y_train == 0]) <= set(range(k0))
    assert set(train_ids[y_train == 1]) <= set(range(k0, inferred.n_groups))

    if with_s:
        assert set(inferred.alignment) == {"training", "validation"}
        for split, items, ys in [("training", train, y_train), ("validation", val, y_val)]:
            s = np.array([item["s"] for item in items])
            ids = np.array(inferred.groups[split])
            expected = {str(c): normalized_mutual_info_score(s[ys == c], ids[ys == c]) for c in (0, 1)}
            assert inferred.alignment[split] == pytest.approx(expected, abs=1e-6)
    else:
        assert inferred.alignment == {}


def test_george_groups_writer_requires_training(tmp_path):
    clusterer = GeorgeClusterer(reducer="pca")
    with pytest.raises(ValueError, match="'training'"):
        GeorgeGroupsWriter({"validation": []}, tmp_path / "g.json", clusterer)


def test_george_two_stages_through_attach_to_trainer(tmp_path):
    """GEORGE as the bundle wires it: the group-DRO stage (dataset and loss reading the groups file, attached by
    AttachToTrainer) is built before the ERM stage has written the file."""
    train = _data(n_unique=16, n_pairs=2, seed=4)
    path = tmp_path / "groups.json"
    dataset = GroupLabelledDataset(train, path)
    objective = GroupDROObjective(ChannelCrossEntropyLoss(reduction="none"), groups=path, step_size=0.1,
                                  size_adjustment=3.0)
    network2 = _network()
    stage2 = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=1, train_data_loader=DataLoader(dataset, batch_size=4),
        network=network2, optimizer=torch.optim.SGD(network2.parameters(), lr=0.05), loss_function=objective,
        train_handlers=[AttachToTrainer([dataset, objective])])
    seen: list[int] = []
    stage2.add_event_handler(Events.ITERATION_STARTED, lambda e: seen.extend(e.state.batch["group"].tolist()))

    writer = GeorgeGroupsWriter({"training": _loader(train)}, path, GeorgeClusterer(reducer="pca", k_range=[2, 3]))
    _trainer(_network(), train, [writer]).run()  # stage 1 writes the file
    inferred = InferredGroups.load(path)
    stage2.run()
    assert seen == inferred.groups["training"]
    # the training-set sizes as they are (an empty group stays 0: GroupDROLoss gives it no size adjustment)
    sizes = np.bincount(inferred.groups["training"], minlength=inferred.n_groups)
    assert objective.group_loss.group_counts.tolist() == [float(c) for c in sizes]
    q = [stage2.state.metrics[f"dro_q_{g}"] for g in range(inferred.n_groups)]
    assert sum(q) == pytest.approx(1.0) and f"dro_q_{inferred.n_groups}" not in stage2.state.metrics
