"""Per-artifact AUROC gaps: how much worse a model ranks the test images that show an artifact (Sec. 5.1, ISIC).

For each artifact (dark corner, hair, gel border, gel bubble, ruler, ink, patches in the ISIC trap sets), the test set
is cut into the images with the artifact and those without, and the AUROC is computed on each side. Sec. 5.1 relates
the gap between the two to how much the artifact overlaps the lesion (large for hair, gel bubbles and rulers, small
for dark corners).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from .robust_auroc import _as_1d, auroc

__all__ = ["artifact_auroc_gaps"]


def artifact_auroc_gaps(y_pred: Any, y: Any, flags: Mapping[str, Any]) -> dict[str, dict[str, float | int]]:
    """AUROC on the images with and without each artifact, and their gap (Sec. 5.1).

    Args:
        y_pred: image scores, shape (n,); higher means more likely abnormal (malignant).
        y: image labels in {0, 1}, shape (n,).
        flags: artifact name -> 0/1 flags, shape (n,) each (e.g. the datalist's ``dark_corner``, ``hair``, ...).

    Returns:
        artifact -> ``{"auroc_with", "auroc_without", "gap", "n_with", "n_without"}`` where
        ``gap = auroc_without - auroc_with`` (positive when the images with the artifact are ranked worse). A side
        with images of one class only (or none) has an undefined AUROC: NaN with a ``RuntimeWarning`` naming the
        artifact and side, and the gap is then NaN too.

    Raises:
        ValueError: naming the array when lengths differ, a label or flag is not 0/1, or a score is not finite.
    """
    score, labels = _as_1d(y_pred, "y_pred"), _as_1d(y, "y")
    if score.size != labels.size:
        raise ValueError(f"y_pred and y must have the same length, got {score.size} and {labels.size}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("y must hold only 0 and 1")
    report: dict[str, dict[str, float | int]] = {}
    for name, values in flags.items():
        flag = _as_1d(values, f"flags[{name!r}]")
        if flag.size != score.size:
            raise ValueError(f"flags[{name!r}] has {flag.size} values, y_pred has {score.size}")
        if not np.isin(flag, (0, 1)).all():
            raise ValueError(f"flags[{name!r}] must hold only 0 and 1")
        present = flag == 1
        sides = {}
        for side, keep in (("with", present), ("without", ~present)):
            if keep.sum() == 0:
                warnings.warn(f"AUROC of the images {side} artifact '{name}' is undefined: there are none; "
                              "reporting NaN", RuntimeWarning, stacklevel=2)
                sides[side] = math.nan
            else:
                sides[side] = auroc(score[keep], labels[keep], subset=f"{side} artifact '{name}'")
        report[str(name)] = {
            "auroc_with": sides["with"],
            "auroc_without": sides["without"],
            "gap": sides["without"] - sides["with"],
            "n_with": int(present.sum()),
            "n_without": int((~present).sum()),
        }
    return report
