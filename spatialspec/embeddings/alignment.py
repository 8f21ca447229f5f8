"""Subgroup alignment of image embeddings (Saab et al. 2022, Sec. 3.3.2, Table 2 and Fig. 3b/c).

The paper measures how "aligned" the subgroups of the same class but different spurious label are by "the average
cosine similarity between embeddings from the different subgroups": for the pairs (y=0, s=0) <-> (y=0, s=1) and
(y=1, s=0) <-> (y=1, s=1), the mean of cos(e_i, e_j) over every i in one subgroup and j in the other (Table 2), and
shows a 2-D UMAP projection of the embeddings coloured by (y, s) (Fig. 3b/c).

**Centring.** The paper does not centre (its definition is the plain average cosine similarity, and every value of
its Table 2 lies in [0.13, 0.93], as raw cosines of post-ReLU ResNet features do), so
:func:`subgroup_cosine_similarity` defaults to ``center=False``: the paper's measure. Raw cosines of features that
share a large common component (post-ReLU / PReLU activations averaged over the image) are pulled towards 1 by that
component, whose size differs from one trained network to the next; the raw measure then tracks the offset more than
the alignment. ``center="balanced"`` (or ``True``) subtracts the mean of the (y, s) subgroup means first, each
subgroup weighing the same whatever its size: if embeddings were e = c + y u + s v with u orthogonal to v (no
noise), the same-class cosine would be (|u|^2 - |v|^2) / (|u|^2 + |v|^2), positive when the class direction u
outweighs the spurious direction v, for either class and any subgroup sizes. ``center="mean"`` subtracts the plain
mean of all samples; with unbalanced classes (90 % abnormal images on the paper's test split) that mean is close to
the majority class's, whose two subgroups then differ from it mostly along v, which pulls their cosine towards -1.
``scripts/reproduce_figure3.py`` reports the raw and the balanced-centred measure.

The average over all pairs is computed without forming the |A| x |B| matrix: with unit vectors u_i = e_i / |e_i|,
mean_{i in A, j in B} u_i . u_j = (mean_{i in A} u_i) . (mean_{j in B} u_j), one matrix-vector product per subgroup.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spatialspec.atomic import save_figure_atomic

__all__ = ["SAME_CLASS_PAIRS", "CENTERINGS", "pair_key", "subgroup_cosine_similarity", "umap_projection",
           "plot_embedding_projection", "SUBGROUP_COLOURS"]

#: the two same-class, different-spurious-label pairs of Table 2, as ((y, s), (y, s))
SAME_CLASS_PAIRS: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (((0, 0), (0, 1)), ((1, 0), (1, 1)))

#: colours of the four (y, s) subgroups in :func:`plot_embedding_projection`
SUBGROUP_COLOURS = {(0, 0): "tab:blue", (0, 1): "tab:cyan", (1, 0): "tab:red", (1, 1): "tab:orange"}

#: the ``center`` modes of :func:`subgroup_cosine_similarity`
CENTERINGS = ("none", "mean", "balanced")

_EPS = 1e-12


def pair_key(a: tuple[int, int], b: tuple[int, int]) -> str:
    """The result key of a subgroup pair, e.g. ``y0s0_y0s1`` for ((0, 0), (0, 1))."""
    return f"y{a[0]}s{a[1]}_y{b[0]}s{b[1]}"


def _labels(values: Any, name: str, n: int) -> np.ndarray:
    array = np.asarray(values).reshape(-1)
    if array.shape[0] != n:
        raise ValueError(f"{name} must hold one label per embedding ({n}), got {array.shape[0]}")
    return array


def _centering(center: bool | str) -> str:
    if isinstance(center, bool):
        return "balanced" if center else "none"
    if center not in CENTERINGS:
        raise ValueError(f"center must be a bool or one of {', '.join(CENTERINGS)}, got {center!r}")
    return center


def subgroup_cosine_similarity(embeddings: Any, y: Any, s: Any, center: bool | str = False,
                               pairs: Sequence[tuple[tuple[int, int], tuple[int, int]]] = SAME_CLASS_PAIRS
                               ) -> dict[str, float]:
    """Average pairwise cosine similarity between subgroups of embeddings (Sec. 3.3.2, Table 2).

    For each pair (A, B) of (y, s) subgroups: the mean of cos(e_i, e_j) over all i in A and j in B (every cross
    pair once; a vector of norm 0 has cosine 0 with everything).

    Args:
        embeddings: N x C (or N x ..., flattened) embeddings, e.g. ``extract_embeddings(...)["embedding"]``.
        y: N class labels.
        s: N spurious labels.
        center: ``False`` / ``"none"`` (the paper's measure), ``True`` / ``"balanced"`` (subtract the mean of the
            non-empty (y, s) subgroup means first) or ``"mean"`` (subtract the mean of all N embeddings); see the
            module docstring.
        pairs: the subgroup pairs, as ((y, s), (y, s)); by default (y=0,s=0)<->(y=0,s=1) and (y=1,s=0)<->(y=1,s=1).

    Returns:
        ``{"y0s0_y0s1": float, "y1s0_y1s1": float}`` (keys by :func:`pair_key`); NaN, with a ``RuntimeWarning``, for a
        pair with an empty subgroup.

    Raises:
        ValueError: if ``embeddings`` is empty or non-finite, ``y`` / ``s`` do not hold one label per embedding, or
            ``center`` is unknown.
    """
    mode = _centering(center)
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"embeddings must be an N x C array with N >= 1, got shape {x.shape}")
    x = x.reshape(x.shape[0], -1)
    if not np.isfinite(x).all():
        raise ValueError("embeddings hold NaN or infinite values")
    y, s = _labels(y, "y", len(x)), _labels(s, "s", len(x))
    if mode == "mean":
        x = x - x.mean(axis=0, keepdims=True)
    elif mode == "balanced":
        groups = np.unique(np.stack([y, s], axis=1), axis=0)
        x = x - np.mean([x[(y == gy) & (s == gs)].mean(axis=0) for gy, gs in groups], axis=0)
    units = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), _EPS)
    result: dict[str, float] = {}
    for a, b in pairs:
        members = [(y == g[0]) & (s == g[1]) for g in (a, b)]
        key = pair_key(a, b)
        empty = [f"(y={g[0]}, s={g[1]})" for g, m in zip((a, b), members) if not m.any()]
        if empty:
            warnings.warn(f"subgroup_cosine_similarity: {key} is NaN, subgroup {' and '.join(empty)} is empty",
                          RuntimeWarning, stacklevel=2)
            result[key] = float("nan")
            continue
        # mean over i in A, j in B of u_i . u_j == (mean_A u) . (mean_B u)
        weights = np.stack(members).astype(np.float64)
        weights /= weights.sum(axis=1, keepdims=True)
        mean_a, mean_b = weights @ units
        result[key] = float(mean_a @ mean_b)
    return result


def _import_umap() -> Any:
    try:
        import umap
    except ImportError as e:
        raise ImportError("UMAP projections need umap-learn: pip install 'spatialspec[umap]'") from e
    return umap


def umap_projection(embeddings: Any, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1,
                    metric: str = "cosine") -> np.ndarray:
    """A 2-D UMAP projection of the embeddings (Fig. 3b/c), reproducible for a given ``seed``.

    Args:
        embeddings: N x C embeddings (N >= 4).
        seed: UMAP's ``random_state`` (single-threaded, so the result is deterministic).
        n_neighbors: UMAP's neighbourhood size (capped at N - 1).
        min_dist: UMAP's minimum distance between embedded points.
        metric: the input metric; ``cosine`` by default, the similarity Table 2 measures.

    Returns:
        N x 2 float array.

    Raises:
        ImportError: without umap-learn (``pip install 'spatialspec[umap]'``).
        ValueError: for fewer than 4 embeddings or non-finite values.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim < 2 or x.shape[0] < 4:
        raise ValueError(f"embeddings must be an N x C array with N >= 4 for a UMAP projection, got shape {x.shape}")
    x = x.reshape(x.shape[0], -1)
    if not np.isfinite(x).all():
        raise ValueError("embeddings hold NaN or infinite values")
    umap = _import_umap()
    reducer = umap.UMAP(n_components=2, n_neighbors=max(2, min(int(n_neighbors), len(x) - 1)),
                        min_dist=float(min_dist), metric=metric, random_state=int(seed), n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # umap's "n_jobs overridden by random_state" notice
        return np.asarray(reducer.fit_transform(x), dtype=np.float64)


def plot_embedding_projection(points: Any, y: Any, s: Any, path: str | os.PathLike, title: str = "") -> Path:
    """Scatter plot of 2-D projected embeddings coloured by the (y, s) subgroup (Fig. 3b/c), written atomically as
    PNG.

    Args:
        points: N x 2 coordinates (e.g. :func:`umap_projection`).
        y: N class labels.
        s: N spurious labels.
        path: the PNG file.
        title: the figure title.

    Returns:
        the written path.

    Raises:
        ValueError: if ``points`` is not N x 2 or ``y`` / ``s`` do not hold N labels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must be an N x 2 array, got shape {pts.shape}")
    y, s = _labels(y, "y", len(pts)), _labels(s, "s", len(pts))
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for (gy, gs), colour in SUBGROUP_COLOURS.items():
        members = (y == gy) & (s == gs)
        if members.any():
            ax.scatter(pts[members, 0], pts[members, 1], s=7, alpha=0.7, color=colour, linewidths=0,
                       label=f"y={gy}, s={gs} ({int(members.sum())})")
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.legend(loc="best", fontsize=8, markerscale=2, frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure_atomic(fig, path)
