"""GEORGE's building blocks (Sohoni et al. 2020; Saab et al. 2022, App. A.2) on hand-made blobs: the choice of k by
silhouette, per-class clustering into global group ids, the inferred-groups file and the group-labelled dataset."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits

from spatialspec.robust import (
    GeorgeClusterer,
    GroupLabelledDataset,
    InferredGroups,
    cluster_alignment,
    select_n_clusters,
)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """k-means and the mixtures on a few dozen points run faster on one thread than on cores shared with others."""
    with threadpool_limits(limits=1):
        yield


def _blobs(centres: np.ndarray, per_blob: int, scale: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``per_blob`` Gaussian points around each centre; returns the points and their blob index."""
    rng = np.random.default_rng(seed)
    centres = np.asarray(centres, dtype=np.float64)
    blob = np.repeat(np.arange(len(centres)), per_blob)
    return centres[blob] + rng.normal(scale=scale, size=(len(blob), centres.shape[1])), blob


def _circle(k: int, radius: float = 10.0) -> np.ndarray:
    angles = 2 * np.pi * np.arange(k) / k
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


# ---------------------------------------------------------------------------------------------------------------
# select_n_clusters
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("clusterer", ["gmm", "kmeans"])
@pytest.mark.parametrize("k_true", [3, 5])
def test_select_n_clusters_finds_the_blobs(clusterer, k_true):
    points, blob = _blobs(_circle(k_true), per_blob=15, scale=0.3, seed=k_true)
    model, k, scores = select_n_clusters(points, range(2, 8), clusterer=clusterer, seed=0)
    assert k == k_true
    assert sorted(scores) == [2, 3, 4, 5, 6, 7]
    assert max(scores, key=scores.get) == k_true
    assigned = model.predict(points)
    # the returned model is the k-cluster fit whose silhouette was recorded, and it recovers the blobs
    assert len(np.unique(assigned)) == k_true
    assert scores[k] == pytest.approx(silhouette_score(points, assigned))
    table = np.zeros((k_true, k_true), dtype=int)
    np.add.at(table, (blob, assigned), 1)
    assert ((table > 0).sum(axis=1) == 1).all() and ((table > 0).sum(axis=0) == 1).all()


def test_select_n_clusters_skips_k_above_n_minus_1():
    points, _ = _blobs(_circle(2), per_blob=3, scale=0.1, seed=0)  # 6 points: k <= 5
    _, k, scores = select_n_clusters(points, range(2, 11), clusterer="kmeans")
    assert sorted(scores) == [2, 3, 4, 5]
    assert k == 2
    _, _, scores = select_n_clusters(points, [1, 3, 40], clusterer="kmeans")  # k < 2 and k > n - 1 dropped
    assert sorted(scores) == [3]


def test_select_n_clusters_invalid():
    with pytest.raises(ValueError, match="at least 3 points"):
        select_n_clusters(np.zeros((2, 2)), [2])
    with pytest.raises(ValueError, match="at least 3 points"):
        select_n_clusters(np.random.default_rng(0).normal(size=(5, 2)), [5, 6])  # no feasible k
    with pytest.raises(ValueError, match="clusterer.*'dbscan'"):
        select_n_clusters(np.zeros((5, 2)), [2], clusterer="dbscan")


# ---------------------------------------------------------------------------------------------------------------
# GeorgeClusterer
# ---------------------------------------------------------------------------------------------------------------

DIM = 6
# directions in R^6: class 0 is made of 2 blobs, class 1 of 3 (distinct directions, so L2 normalisation keeps them)
CLASS_BLOBS = {0: [0, 1], 1: [2, 3, 4]}


def _class_data(per_blob: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings, class labels and global blob index (0..4) of the two-class blob set."""
    rng = np.random.default_rng(seed)
    xs, ys, blobs = [], [], []
    for label, directions in CLASS_BLOBS.items():
        for d in directions:
            centre = np.eye(DIM)[d] + 0.3 * np.eye(DIM)[5]
            # random positive norms: the direction, not the length, tells the blob
            x = (centre + rng.normal(scale=0.03, size=(per_blob, DIM))) * rng.uniform(0.5, 5.0, size=(per_blob, 1))
            xs.append(x)
            ys.append(np.full(per_blob, label))
            blobs.append(np.full(per_blob, d))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(blobs)


def _one_group_per_blob(blob: np.ndarray, groups: np.ndarray) -> dict[int, int]:
    """The blob -> group map, asserting that every blob falls in exactly one group and no two blobs share one."""
    table = np.zeros((blob.max() + 1, groups.max() + 1), dtype=int)
    np.add.at(table, (blob, groups), 1)
    table = table[table.sum(axis=1) > 0]
    assert ((table > 0).sum(axis=1) == 1).all(), table
    assert ((table > 0).sum(axis=0) <= 1).all(), table
    return {int(b): int(np.unique(groups[blob == b])[0]) for b in np.unique(blob)}


@pytest.mark.parametrize("clusterer", ["gmm", "kmeans"])
@pytest.mark.parametrize("reducer", ["pca", "none"])
def test_george_clusterer_per_class_groups(reducer, clusterer):
    x, y, blob = _class_data(per_blob=12, seed=1)
    model = GeorgeClusterer(reducer=reducer, clusterer=clusterer, k_range=range(2, 7), seed=0).fit(x, y)
    assert model.n_groups == 5
    train_groups = model.predict(x, y)
    assert set(train_groups[y == 0]) == {0, 1}  # class 0's clusters come first
    assert set(train_groups[y == 1]) == {2, 3, 4}
    train_map = _one_group_per_blob(blob, train_groups)

    # fresh points from the same blobs, in another order: the same blob -> group map
    x_new, y_new, blob_new = _class_data(per_blob=7, seed=2)
    order = np.random.default_rng(3).permutation(len(y_new))
    new_groups = model.predict(x_new[order], y_new[order])
    assert _one_group_per_blob(blob_new[order], new_groups) == train_map

    summary = model.summary()
    assert [(s["label"], s["k"], s["offset"]) for s in summary] == [(0, 2, 0), (1, 3, 2)]
    assert set(summary[1]["silhouette"]) == {"2", "3", "4", "5", "6"}
    assert max(summary[1]["silhouette"], key=summary[1]["silhouette"].get) == "3"


def test_george_clusterer_ignores_positive_scale():
    x, y, _ = _class_data(per_blob=12, seed=4)
    model = GeorgeClusterer(reducer="none", k_range=range(2, 5)).fit(x, y)
    groups = model.predict(x, y)
    factors = np.random.default_rng(5).choice([1e-3, 0.1, 7.0, 1e4], size=(len(x), 1))
    assert np.array_equal(model.predict(x * factors, y), groups)
    # fitting on rescaled embeddings gives the same partition (one refit group per original group)
    refit = GeorgeClusterer(reducer="none", k_range=range(2, 5)).fit(x * factors, y)
    assert len(_one_group_per_blob(groups, refit.predict(x, y))) == 5


def test_george_clusterer_small_class_is_one_group():
    x, y, blob = _class_data(per_blob=10, seed=6)
    keep = (y == 1) | (np.arange(len(y)) < 3)  # class 0 keeps 3 samples
    x, y, blob = x[keep], y[keep], blob[keep]
    assert (y == 0).sum() == 3
    model = GeorgeClusterer(reducer="pca", k_range=range(2, 6)).fit(x, y)
    assert model.n_groups == 1 + 3
    groups = model.predict(x, y)
    assert groups[y == 0].tolist() == [0, 0, 0]
    assert set(groups[y == 1]) == {1, 2, 3}
    assert model.summary()[0] == {"label": 0, "k": 1, "offset": 0, "silhouette": {}}


def test_george_clusterer_predict_errors():
    x, y, _ = _class_data(per_blob=6, seed=7)
    with pytest.raises(RuntimeError, match="not fitted"):
        GeorgeClusterer(reducer="pca").predict(x, y)
    with pytest.raises(RuntimeError, match="not fitted"):
        GeorgeClusterer(reducer="pca").n_groups
    model = GeorgeClusterer(reducer="pca", k_range=[2, 3]).fit(x, y)
    with pytest.raises(ValueError, match="class 2 was not seen"):
        model.predict(x[:3], np.array([0, 2, 1]))
    with pytest.raises(ValueError, match="same length"):
        GeorgeClusterer(reducer="pca").fit(x, y[:-1])


@pytest.mark.parametrize("kwargs, message", [
    ({"reducer": "tsne"}, "reducer.*'tsne'"),
    ({"reducer": "pca", "clusterer": "dbscan"}, "clusterer.*'dbscan'"),
    ({"reducer": "pca", "k_range": []}, "k_range"),
    ({"reducer": "pca", "k_range": [1, 2]}, "k_range"),
    ({"reducer": "pca", "n_components": 0}, "n_components"),
])
def test_george_clusterer_invalid_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GeorgeClusterer(**kwargs)


def test_george_clusterer_without_umap_falls_back_to_pca(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # `import umap` now raises ImportError
    x, y, _ = _class_data(per_blob=8, seed=3)
    with pytest.warns(UserWarning, match=r"PCA instead of the paper's UMAP; pip install 'spatialspec\[umap\]'"):
        fallback = GeorgeClusterer(reducer="umap", k_range=range(2, 4), seed=0)
    assert fallback.reducer == "umap"  # the parameter as given; the reducer used is a fitted attribute
    fallback.fit(x, y)
    assert fallback.reducer_ == "pca"
    pca = GeorgeClusterer(reducer="pca", k_range=range(2, 4), seed=0).fit(x, y)
    np.testing.assert_array_equal(fallback.predict(x, y), pca.predict(x, y))
    assert pca.reducer_ == "pca"


@pytest.mark.slow
def test_george_clusterer_umap_finds_blobs():
    pytest.importorskip("umap")
    x, y, blob = _class_data(per_blob=15, seed=8)
    model = GeorgeClusterer(reducer="umap", k_range=range(2, 6), seed=0).fit(x, y)
    assert model.n_groups == 5
    groups = model.predict(x, y)
    assert set(groups[y == 0]) == {0, 1} and set(groups[y == 1]) == {2, 3, 4}
    _one_group_per_blob(blob, groups)


# ---------------------------------------------------------------------------------------------------------------
# cluster_alignment
# ---------------------------------------------------------------------------------------------------------------

def test_cluster_alignment_perfect_and_independent():
    labels = np.array([0] * 8 + [1] * 8)
    spurious = np.array([0, 0, 0, 0, 1, 1, 1, 1] * 2)
    # class 0: groups are s relabelled (0 -> 1, 1 -> 0); class 1: groups independent of s (balanced design:
    # every (group, s) pair occurs twice, so the mutual information is 0)
    groups = np.array([1, 1, 1, 1, 0, 0, 0, 0] + [2, 2, 3, 3, 2, 2, 3, 3])
    out = cluster_alignment(groups, labels, spurious)
    assert set(out) == {0, 1}
    assert out[0] == pytest.approx(1.0)
    assert out[1] == pytest.approx(0.0, abs=1e-12)
    # a finer partition that still determines s is not perfect: I(g; s) = 1 bit, H(g) = 2 bits, H(s) = 1 bit
    finer = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    nmi = cluster_alignment(finer, np.zeros(8), spurious[:8])[0]
    assert nmi == pytest.approx(1.0 / ((2.0 + 1.0) / 2))  # arithmetic-mean normalisation: 2/3


# ---------------------------------------------------------------------------------------------------------------
# InferredGroups
# ---------------------------------------------------------------------------------------------------------------

def _inferred() -> InferredGroups:
    return InferredGroups(n_groups=4, groups={"training": [0, 0, 1, 1, 1, 3, 3], "validation": [2, 0, 3]},
                          clusters=[{"label": 0, "k": 2, "offset": 0, "silhouette": {"2": 0.5}}],
                          alignment={"training": {"0": 0.25}})


def test_inferred_groups_counts():
    # group 2 has no training sample: count 1 (the DRO adjustment divides by sqrt(count))
    assert _inferred().counts == [2, 3, 1, 2]
    assert InferredGroups(n_groups=3, groups={"training": []}).counts == [1, 1, 1]


def test_inferred_groups_round_trip(tmp_path):
    path = _inferred().save(tmp_path / "sub" / "groups.json")
    assert path == tmp_path / "sub" / "groups.json"
    assert json.loads(path.read_text())["groups"]["validation"] == [2, 0, 3]
    assert InferredGroups.load(path) == _inferred()
    assert InferredGroups.load(str(path)).counts == [2, 3, 1, 2]


def test_inferred_groups_load_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent_groups.json"):
        InferredGroups.load(tmp_path / "absent_groups.json")


@pytest.mark.parametrize("content", [
    "{oops",
    json.dumps([1, 2]),
    json.dumps({"groups": {"training": [0]}}),
    json.dumps({"n_groups": 2}),
    json.dumps({"n_groups": 2, "groups": {"validation": [0]}}),
    json.dumps({"n_groups": 2, "groups": {"training": ["a"]}}),
    json.dumps({"n_groups": 2, "groups": [0, 1]}),
])
def test_inferred_groups_load_malformed(tmp_path, content):
    path = tmp_path / "bad_groups.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="bad_groups.json.*malformed"):
        InferredGroups.load(path)


@pytest.mark.parametrize("training", [[0, 2], [-1, 0]])
def test_inferred_groups_load_ids_out_of_range(tmp_path, training):
    path = tmp_path / "range_groups.json"
    path.write_text(json.dumps({"n_groups": 2, "groups": {"training": training}}))
    with pytest.raises(ValueError, match=r"range_groups.json.*\[0, 2\)"):
        InferredGroups.load(path)


# ---------------------------------------------------------------------------------------------------------------
# GroupLabelledDataset
# ---------------------------------------------------------------------------------------------------------------

def _items(n: int = 7) -> list[dict]:
    return [{"image": torch.full((1, 2, 2), float(i)), "y": i % 2} for i in range(n)]


def test_group_labelled_dataset_adds_groups():
    base = _items()
    for groups, expected in [(_inferred(), [0, 0, 1, 1, 1, 3, 3]), ([4, 3, 2, 1, 0, 1, 2], [4, 3, 2, 1, 0, 1, 2])]:
        ds = GroupLabelledDataset(base, groups)
        assert len(ds) == 7
        for i in range(len(ds)):
            item = ds[i]
            assert item["group"].dtype == torch.int64 and int(item["group"]) == expected[i]
            assert torch.equal(item["image"], base[i]["image"]) and item["y"] == base[i]["y"]
    assert "group" not in base[0]  # the base items are not modified
    val = GroupLabelledDataset(_items(3), _inferred(), split="validation", group_key="g")
    assert [int(val[i]["g"]) for i in range(3)] == [2, 0, 3]
    batch = next(iter(torch.utils.data.DataLoader(GroupLabelledDataset(base, _inferred()), batch_size=7)))
    assert batch["group"].tolist() == [0, 0, 1, 1, 1, 3, 3] and batch["image"].shape == (7, 1, 2, 2)


def test_group_labelled_dataset_errors():
    with pytest.raises(ValueError, match="3 group ids for a dataset of 7 items"):
        GroupLabelledDataset(_items(), [0, 1, 2])
    with pytest.raises(ValueError, match="split 'test'"):
        GroupLabelledDataset(_items(), _inferred(), split="test")
    with pytest.raises(TypeError, match="dict items"):
        GroupLabelledDataset([torch.zeros(2), torch.ones(2)], [0, 1])[0]


def test_group_labelled_dataset_file_written_later(tmp_path):
    path = tmp_path / "groups.json"
    ds = GroupLabelledDataset(_items(), path)
    assert len(ds) == 7
    with pytest.raises(FileNotFoundError, match="groups.json"):
        ds[0]
    _inferred().save(path)
    assert int(ds[5]["group"]) == 3  # first use reads the file
    rewritten = _inferred()
    rewritten.groups["training"] = [1, 1, 1, 0, 0, 0, 2]
    rewritten.save(path)
    assert int(ds[5]["group"]) == 3  # until reload
    ds.reload()
    assert [int(ds[i]["group"]) for i in range(7)] == [1, 1, 1, 0, 0, 0, 2]


def test_group_labelled_dataset_attach_reloads_at_start(tmp_path):
    from ignite.engine import Engine

    path = tmp_path / "groups.json"
    ds = GroupLabelledDataset(_items(), str(path))
    seen: list[int] = []
    engine = Engine(lambda e, batch: seen.extend(batch["group"].tolist()))
    ds.attach(engine)
    loader = torch.utils.data.DataLoader(ds, batch_size=3)
    _inferred().save(path)
    engine.run(loader, max_epochs=1)
    assert seen == [0, 0, 1, 1, 1, 3, 3]
    rewritten = _inferred()
    rewritten.groups["training"] = [3, 2, 1, 0, 0, 1, 2]
    rewritten.save(path)
    seen.clear()
    engine.run(loader, max_epochs=1)  # a new run re-reads the file at STARTED
    assert seen == [3, 2, 1, 0, 0, 1, 2]
    wrong = InferredGroups(n_groups=2, groups={"training": [0, 1]})
    wrong.save(path)
    with pytest.raises(ValueError, match="2 group ids for a dataset of 7 items"):
        ds.reload()


def test_inferred_groups_load_checks_every_split_and_n_groups(tmp_path):
    import json as _json

    from spatialspec.robust.george import InferredGroups as _Groups

    path = tmp_path / "groups.json"
    path.write_text(_json.dumps({"n_groups": 2, "groups": {"training": [0, 1], "validation": [5, 0]}}))
    with pytest.raises(ValueError, match="groups.json: validation group ids"):
        _Groups.load(path)
    path.write_text(_json.dumps({"n_groups": 0, "groups": {"training": []}}))
    with pytest.raises(ValueError, match="groups.json: n_groups must be >= 1"):
        _Groups.load(path)
