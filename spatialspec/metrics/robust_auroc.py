"""Robust AUROC and subgroup AUROCs: how much a classifier relies on a spurious feature (Sec. 3.3.2, Sec. 5.1).

Subgroups are the four (y, s) cells. The training correlation pairs y = 1 with s = 1 and y = 0 with s = 0; the
*robust* AUROC is the AUROC on the images where that correlation is broken: abnormal images without the spurious
feature (y = 1, s = 0) together with normal images with it (y = 0, s = 1). A model that reads the spurious feature
ranks exactly these images backwards and scores near 0; a model that reads the abnormality scores near 1.

The *pair* AUROCs compare one negative subgroup with one positive subgroup, and the worst-pair AUROC is their
minimum, the figure to watch when no single subset is known to be the hard one. AUROC itself is scikit-learn's.

Every function takes ``(y_pred, y, s)``: the image scores, the image labels and the spurious labels, in the order and
with the names of MONAI's :func:`~monai.metrics.compute_roc_auc` (``y_pred``, ``y``), ``s`` following.

The figures are computed with numpy (torch tensors are accepted), so that reading results (``spatialspec compare``)
needs no torch; the MONAI metric that gathers them during training, :class:`RobustAUROCMetric`, lives in
:mod:`spatialspec.metrics.robust_auroc_metric` and is re-exported here on first access.
"""

from __future__ import annotations

import math
import sys
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .robust_auroc_metric import RobustAUROCMetric

__all__ = ["auroc", "robust_auroc", "subgroup_aurocs", "RobustAUROCMetric", "PAIR_NAMES", "FIGURE_NAMES"]

PAIRS = (((0, 0), (1, 0)), ((0, 0), (1, 1)), ((0, 1), (1, 0)), ((0, 1), (1, 1)))
PAIR_NAMES = tuple(f"auroc_y{n[0]}s{n[1]}_y{p[0]}s{p[1]}" for n, p in PAIRS)
FIGURE_NAMES = ("overall_auroc", "robust_auroc", "worst_pair_auroc", *PAIR_NAMES)


def _as_1d(values: Any, name: str) -> np.ndarray:
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported; this module does not import it
    if torch is not None and isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return arr


def _check(y_pred: Any, y: Any, s: Any | None = None) -> tuple[np.ndarray, ...]:
    arrays = [_as_1d(y_pred, "y_pred"), _as_1d(y, "y")]
    if s is not None:
        arrays.append(_as_1d(s, "s"))
    if len({len(a) for a in arrays}) != 1:
        raise ValueError(f"y_pred, y and s must have the same length, got {[len(a) for a in arrays]}")
    for name, arr in zip(("y", "s"), arrays[1:]):
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must hold only 0 and 1")
    return tuple(arrays)


def auroc(y_pred: Any, y: Any, subset: str = "all") -> float:
    """AUROC of ``y_pred`` against binary ``y`` (scikit-learn), NaN with a warning naming ``subset`` when only one
    class is present. Arguments in the order and with the names of MONAI's
    :func:`~monai.metrics.compute_roc_auc` (``y_pred``, ``y``).

    Args:
        y_pred: array-like of shape (n_samples,), the image scores; higher means more likely abnormal.
        y: array-like of shape (n_samples,) with values in {0, 1}, the image label.
        subset: the name of the subset, used in the warning.
    """
    score, labels = _check(y_pred, y)
    if len(np.unique(labels)) < 2:
        warnings.warn(f"AUROC of subset '{subset}' is undefined: it holds {len(labels)} samples of one class only; "
                      "reporting NaN", RuntimeWarning, stacklevel=2)
        return math.nan
    from sklearn.metrics import roc_auc_score  # about 1.5 s to import: only when an AUROC is computed

    return float(roc_auc_score(labels, score))


def robust_auroc(y_pred: Any, y: Any, s: Any) -> float:
    """AUROC on the images where the training correlation is broken: (y=1, s=0) with (y=0, s=1) (Sec. 5.1).

    Args:
        y_pred: array-like of shape (n_samples,), the image scores.
        y: array-like of shape (n_samples,), the image label y in {0, 1}.
        s: array-like of shape (n_samples,), the spurious label s in {0, 1}.
    """
    score, labels, spurious = _check(y_pred, y, s)
    keep = labels != spurious
    return auroc(score[keep], labels[keep], subset="robust (y=1,s=0 vs y=0,s=1)")


def subgroup_aurocs(y_pred: Any, y: Any, s: Any) -> dict[str, float]:
    """Every figure of the robustness report (Sec. 3.3.2, 5.1).

    Args:
        y_pred: array-like of shape (n_samples,), the image scores.
        y: array-like of shape (n_samples,), the image label y in {0, 1}.
        s: array-like of shape (n_samples,), the spurious label s in {0, 1}.

    Returns:
        ``overall_auroc``, ``robust_auroc``, the four pair AUROCs ``auroc_y{0}s{a}_y{1}s{b}`` (negative subgroup
        against positive subgroup) and ``worst_pair_auroc`` (the smallest defined pair AUROC, NaN if none is).
    """
    score, labels, spurious = _check(y_pred, y, s)
    report = {"overall_auroc": auroc(score, labels, subset="overall"),
              "robust_auroc": robust_auroc(score, labels, spurious)}
    pairs = {}
    for name, (neg, pos) in zip(PAIR_NAMES, PAIRS):
        keep = ((labels == neg[0]) & (spurious == neg[1])) | ((labels == pos[0]) & (spurious == pos[1]))
        pairs[name] = auroc(score[keep], labels[keep], subset=f"y={neg[0]},s={neg[1]} vs y={pos[0]},s={pos[1]}")
    defined = [v for v in pairs.values() if not math.isnan(v)]
    report["worst_pair_auroc"] = min(defined) if defined else math.nan
    report.update(pairs)
    return report


def __getattr__(name: str) -> Any:
    """:class:`RobustAUROCMetric` on first access (PEP 562): it subclasses MONAI's ``Cumulative``."""
    if name == "RobustAUROCMetric":
        from .robust_auroc_metric import RobustAUROCMetric

        return RobustAUROCMetric
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
