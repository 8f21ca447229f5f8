"""Just Train Twice (Liu et al. 2021), a baseline on binary labels (Saab et al. 2022, Table 1, App. A.2): the
training samples an ERM model gets wrong are upsampled for a second, fresh ERM model."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["error_set", "upsampling_factor", "upsample"]


def error_set(predictions: Any, labels: Any) -> np.ndarray:
    """Indices of the training samples the first (ERM) model misclassifies.

    Args:
        predictions: array-like of shape (n_samples,), predicted classes.
        labels: array-like of shape (n_samples,), true classes.

    Returns:
        the sorted indices where ``predictions != labels``.
    """
    pred = np.asarray(predictions).reshape(-1)
    true = np.asarray(labels).reshape(-1)
    if pred.shape != true.shape:
        raise ValueError(f"predictions and labels must have the same length, got {pred.size} and {true.size}")
    return np.flatnonzero(pred != true)


def upsampling_factor(n_samples: int, n_errors: int, lambda_up: int = -1) -> int:
    """JTT's lambda: each error appears ``1 + lambda`` times. ``lambda_up = -1`` asks for balance,
    ``int((N - |E|) / |E|) - 1``, floored at 0.

    Raises:
        ValueError: if ``lambda_up`` is below -1 or the counts are inconsistent.
    """
    if n_errors < 0 or n_errors > n_samples:
        raise ValueError(f"n_errors must lie in [0, n_samples={n_samples}], got {n_errors}")
    if lambda_up < -1:
        raise ValueError(f"lambda_up must be -1 (balanced) or >= 0, got {lambda_up}")
    if lambda_up >= 0:
        return int(lambda_up)
    if n_errors == 0:
        return 0
    return max(int((n_samples - n_errors) / n_errors) - 1, 0)


def upsample(data: Sequence[Any], errors: Sequence[int] | np.ndarray, lambda_up: int = -1) -> list[Any]:
    """The JTT training set: every item of ``data``, with each index in ``errors`` repeated ``1 + lambda`` times.

    An empty error set (the first model made no mistake, e.g. when the training data hold no minority group) leaves
    the data unchanged, with a warning.
    """
    errors = np.unique(np.asarray(errors, dtype=np.int64))
    if errors.size and (errors.min() < 0 or errors.max() >= len(data)):
        raise ValueError(f"error indices must lie in [0, {len(data)}), got min {errors.min()} max {errors.max()}")
    if errors.size == 0:
        warnings.warn("JTT error set is empty: the first model misclassifies no training sample; training on the "
                      "data as it is", RuntimeWarning, stacklevel=2)
        return list(data)
    extra = upsampling_factor(len(data), int(errors.size), lambda_up)
    return list(data) + [data[i] for i in errors for _ in range(extra)]
