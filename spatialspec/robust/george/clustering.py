"""The clustering step of GEORGE (Sohoni et al. 2020; Saab et al. 2022, Table 1, App. A.2): cluster an ERM model's
embeddings within each class to infer hidden subgroups (:class:`GeorgeClusterer`, :class:`InferredGroups`), whose ids
the group-DRO stage reads from the batch (:class:`GroupLabelledDataset`).

Per true class: L2-normalise the embeddings, reduce them (UMAP with 2 components, ``n_neighbors=10``,
``min_dist=0``, seeded; or PCA), and cluster them with a Gaussian mixture (or k-means), choosing the number of
clusters k in ``k_range`` by the mean silhouette. Group ids are global: class c's clusters follow those of the
classes before it. Over-clustering (GEORGE's optional refinement) is not implemented.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import normalized_mutual_info_score, silhouette_score
from sklearn.mixture import GaussianMixture
from torch.utils.data import Dataset

from spatialspec.atomic import write_json_atomic

__all__ = ["GeorgeClusterer", "select_n_clusters", "REDUCERS", "CLUSTERERS", "cluster_alignment", "InferredGroups",
           "GroupLabelledDataset"]

REDUCERS = ("umap", "pca", "none")
CLUSTERERS = ("gmm", "kmeans")


def _make_clusterer(kind: str, k: int, seed: int) -> GaussianMixture | KMeans:
    if kind == "gmm":
        return GaussianMixture(n_components=k, covariance_type="full", random_state=seed, reg_covar=1e-5)
    return KMeans(n_clusters=k, n_init=10, random_state=seed)


def select_n_clusters(points: np.ndarray, k_range: Sequence[int] = range(2, 11), clusterer: str = "gmm",
                      seed: int = 0) -> tuple[Any, int, dict[int, float]]:
    """Fit a clusterer for every k of ``k_range`` and keep the one with the highest mean silhouette.

    k larger than ``len(points) - 1`` is skipped (the silhouette needs 2 <= k <= n - 1); fits that collapse to a
    single cluster score -1.

    Returns:
        ``(fitted clusterer, chosen k, {k: mean silhouette})``.

    Raises:
        ValueError: for an unknown clusterer, an empty ``k_range`` or fewer than 3 points.
    """
    if clusterer not in CLUSTERERS:
        raise ValueError(f"clusterer must be one of {', '.join(CLUSTERERS)}, got {clusterer!r}")
    points = np.asarray(points, dtype=np.float64)
    ks = sorted({int(k) for k in k_range if 2 <= int(k) <= len(points) - 1})
    if len(points) < 3 or not ks:
        raise ValueError(f"select_n_clusters: need at least 3 points and some k in [2, n-1] (n={len(points)}, "
                         f"k_range={list(k_range)})")
    best, best_k, scores = None, ks[0], {}
    for k in ks:
        model = _make_clusterer(clusterer, k, seed).fit(points)
        assigned = model.predict(points)
        scores[k] = float(silhouette_score(points, assigned)) if len(np.unique(assigned)) > 1 else -1.0
        if best is None or scores[k] > scores[best_k]:
            best, best_k = model, k
    return best, best_k, scores


@dataclass
class _ClassModel:
    label: int
    offset: int
    k: int
    reducer: Any = None
    clusterer: Any = None
    silhouette: dict[int, float] = field(default_factory=dict)


class GeorgeClusterer:
    """Per-class clustering of embeddings into inferred subgroups (GEORGE, step 2).

    Args:
        reducer: ``umap`` (the paper's; ``pip install 'spatialspec[umap]'``: without umap-learn it falls back to
            ``pca`` with a warning), ``pca`` or ``none``.
        n_components: dimensions after reduction.
        clusterer: ``gmm`` (scikit-learn's GaussianMixture) or ``kmeans``.
        k_range: candidate cluster counts per class, chosen by mean silhouette.
        seed: seeds the reducer and the clusterer.
        n_neighbors, min_dist: UMAP parameters (GEORGE's 10 and 0).

    A class with fewer than 4 training samples forms one group. After :meth:`fit`, ``reducer_`` is the reducer
    used (``pca`` when ``umap`` was asked for without umap-learn).

    Example:
        >>> clusters = GeorgeClusterer(reducer="pca").fit(train_embeddings, train_y)
        >>> groups = clusters.predict(test_embeddings, test_y)  # ids in [0, clusters.n_groups)
    """

    def __init__(self, reducer: str = "umap", n_components: int = 2, clusterer: str = "gmm",
                 k_range: Sequence[int] = range(2, 11), seed: int = 0, n_neighbors: int = 10,
                 min_dist: float = 0.0) -> None:
        if reducer not in REDUCERS:
            raise ValueError(f"reducer must be one of {', '.join(REDUCERS)}, got {reducer!r}")
        if clusterer not in CLUSTERERS:
            raise ValueError(f"clusterer must be one of {', '.join(CLUSTERERS)}, got {clusterer!r}")
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        self.k_range = [int(k) for k in k_range]
        if not self.k_range or min(self.k_range) < 2:
            raise ValueError(f"k_range must hold cluster counts >= 2, got {list(k_range)}")
        self._reducer = reducer
        if reducer == "umap" and not _umap_available():
            warnings.warn("GEORGE: umap-learn is not installed, so the embeddings are reduced with PCA instead of "
                          "the paper's UMAP; pip install 'spatialspec[umap]' for UMAP", UserWarning, stacklevel=2)
            self._reducer = "pca"
        self.reducer, self.n_components, self.clusterer = reducer, int(n_components), clusterer
        self.seed, self.n_neighbors, self.min_dist = int(seed), int(n_neighbors), float(min_dist)
        self.classes_: list[_ClassModel] = []

    @staticmethod
    def _normalise(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def _make_reducer(self, n_samples: int, n_features: int) -> Any:
        if self._reducer == "none" or n_features <= self.n_components:
            return None
        if self._reducer == "pca":
            return PCA(n_components=min(self.n_components, n_samples), random_state=self.seed)
        umap = _import_umap()
        return umap.UMAP(n_components=self.n_components, n_neighbors=max(2, min(self.n_neighbors, n_samples - 1)),
                         min_dist=self.min_dist, random_state=self.seed, n_jobs=1)

    def fit(self, embeddings: np.ndarray, labels: np.ndarray) -> GeorgeClusterer:
        """Cluster the (training) embeddings of each class; returns ``self``."""
        x, y = self._normalise(embeddings), np.asarray(labels).reshape(-1).astype(np.int64)
        if len(x) != len(y):
            raise ValueError(f"embeddings and labels must have the same length, got {len(x)} and {len(y)}")
        self.classes_, offset = [], 0
        self.reducer_ = self._reducer
        for label in np.unique(y):
            points = x[y == label]
            model = _ClassModel(label=int(label), offset=offset, k=1)
            if len(points) >= 4:
                model.reducer = self._make_reducer(*points.shape)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", category=UserWarning)  # umap's seeded single-thread notice
                    reduced = points if model.reducer is None else model.reducer.fit_transform(points)
                    model.clusterer, model.k, model.silhouette = select_n_clusters(
                        reduced, self.k_range, self.clusterer, self.seed)
            self.classes_.append(model)
            offset += model.k
        return self

    @property
    def n_groups(self) -> int:
        """Total number of inferred groups over all classes."""
        if not self.classes_:
            raise RuntimeError("GeorgeClusterer is not fitted")
        return sum(model.k for model in self.classes_)

    def predict(self, embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Global group ids of embeddings whose class is known (training, validation or test data).

        Raises:
            ValueError: for a class not seen by :meth:`fit`.
        """
        models = {model.label: model for model in self.classes_}
        if not models:
            raise RuntimeError("GeorgeClusterer is not fitted")
        x, y = self._normalise(embeddings), np.asarray(labels).reshape(-1).astype(np.int64)
        groups = np.zeros(len(y), dtype=np.int64)
        for label in np.unique(y):
            if int(label) not in models:
                raise ValueError(f"class {int(label)} was not seen when fitting (classes: {sorted(models)})")
            model, rows = models[int(label)], y == label
            if model.clusterer is None:
                groups[rows] = model.offset
                continue
            points = x[rows] if model.reducer is None else model.reducer.transform(x[rows])
            groups[rows] = model.offset + model.clusterer.predict(points)
        return groups

    def summary(self) -> list[dict[str, Any]]:
        """Per class: the chosen k, the group-id offset and the silhouette of every candidate k."""
        return [{"label": m.label, "k": m.k, "offset": m.offset,
                 "silhouette": {str(k): round(v, 6) for k, v in m.silhouette.items()}} for m in self.classes_]


def cluster_alignment(groups: np.ndarray, labels: np.ndarray, spurious: np.ndarray) -> dict[int, float]:
    """How much the inferred groups of each class tell about the spurious label: the normalised mutual
    information between groups and s within each class (1: the clusters recover s; 0: unrelated)."""
    groups, labels, spurious = (np.asarray(a).reshape(-1) for a in (groups, labels, spurious))
    return {int(c): float(normalized_mutual_info_score(spurious[labels == c], groups[labels == c]))
            for c in np.unique(labels)}


@dataclass
class InferredGroups:
    """GEORGE's inferred groups, as written after the ERM stage and read by the group-DRO stage.

    Args:
        n_groups: number of groups over all classes.
        groups: per split (``training``, ``validation``, ...), the group id of every sample in data-list order.
        clusters: :meth:`GeorgeClusterer.summary` (chosen k and silhouettes per class).
        alignment: per split, :func:`cluster_alignment` with the true spurious label when the data carry one
            (a diagnostic only: GEORGE never sees s).
    """

    n_groups: int
    groups: dict[str, list[int]]
    clusters: list[dict[str, Any]] = field(default_factory=list)
    alignment: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def counts(self) -> list[int]:
        """Training-set size of every group (at least 1, as the DRO generalisation adjustment divides by it)."""
        counts = np.bincount(np.asarray(self.groups["training"], dtype=np.int64), minlength=self.n_groups)
        return [max(int(c), 1) for c in counts]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the groups as JSON, atomically."""
        return write_json_atomic(path, asdict(self))

    @classmethod
    def load(cls, path: str | os.PathLike) -> InferredGroups:
        """Read a file written by :meth:`save`.

        Raises:
            FileNotFoundError: naming the file (the ERM stage has not run).
            ValueError: naming the file when it is malformed.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"GEORGE groups file {path} does not exist: run the ERM stage first")
        try:
            record = json.loads(path.read_text())
            groups = cls(n_groups=int(record["n_groups"]), groups={k: [int(g) for g in v]
                                                                    for k, v in record["groups"].items()},
                         clusters=record.get("clusters", []), alignment=record.get("alignment", {}))
            groups.groups["training"]  # noqa: B018 - required
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"GEORGE groups file {path} is malformed: {e}") from e
        if groups.n_groups < 1:
            raise ValueError(f"GEORGE groups file {path}: n_groups must be >= 1, got {groups.n_groups}")
        for split, values in groups.groups.items():
            ids = np.asarray(values, dtype=np.int64)
            if ids.size and (ids.min() < 0 or ids.max() >= groups.n_groups):
                raise ValueError(f"GEORGE groups file {path}: {split} group ids must lie in [0, {groups.n_groups})")
        return groups


class GroupLabelledDataset(Dataset):
    """A dict dataset whose items gain their inferred group id under ``group_key`` (GEORGE step 3 reads it from
    the batch for group DRO).

    Given the path of a groups file, the dataset reads it on first use and again when the training it feeds starts
    (list it in ``train#handlers`` too: it re-reads the file at ``Events.STARTED``), so the second stage can be built
    before the first stage has written the file.

    Args:
        dataset: the training dataset, in the order the groups were inferred.
        groups: an :class:`InferredGroups`, the path of its file, or a sequence of ids.
        split: which split of the :class:`InferredGroups` to use.
        group_key: the item key to add.
    """

    def __init__(self, dataset: Dataset, groups: InferredGroups | str | os.PathLike | Sequence[int],
                 split: str = "training", group_key: str = "group") -> None:
        self.dataset, self.split, self.group_key = dataset, split, group_key
        self.source = Path(groups) if isinstance(groups, (str, os.PathLike)) else None
        self.groups: list[int] | None = None
        if self.source is None:
            self._set(groups)  # type: ignore[arg-type]

    def _set(self, groups: InferredGroups | Sequence[int]) -> None:
        if isinstance(groups, InferredGroups):
            if self.split not in groups.groups:
                raise ValueError(f"inferred groups have no split {self.split!r} (splits: {sorted(groups.groups)})")
            groups = groups.groups[self.split]
        ids = [int(g) for g in groups]
        if len(ids) != len(self.dataset):  # type: ignore[arg-type]
            raise ValueError(f"{len(ids)} group ids for a dataset of {len(self.dataset)} items: the groups were "  # type: ignore[arg-type]
                             "inferred on other data")
        self.groups = ids

    def reload(self) -> None:
        """Read the groups file again (it may have been rewritten by the first stage)."""
        if self.source is not None:
            self._set(InferredGroups.load(self.source))

    def attach(self, engine: Any) -> None:
        """Re-read the groups when ``engine`` (the second-stage trainer) starts."""
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, lambda _: self.reload())

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Mapping[str, Any]:
        if self.groups is None:
            self.reload()
        item = self.dataset[index]
        if not isinstance(item, Mapping):
            raise TypeError(f"GroupLabelledDataset needs dict items, got {type(item).__name__}")
        return {**item, self.group_key: torch.tensor(self.groups[index])}


def _umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def _import_umap() -> Any:
    import umap

    return umap
