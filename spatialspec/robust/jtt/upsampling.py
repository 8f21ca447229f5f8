"""The error set of Just Train Twice (Liu et al. 2021; Saab et al. 2022, Table 1, App. A.2) and its upsampling: the
training samples an ERM model gets wrong (JTT step 2, :func:`error_set` and its file) appear ``1 + lambda_up`` times
in the training set of a second, fresh ERM model (step 3, :class:`UpsampledDataset`)."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset, Subset

from spatialspec.atomic import write_json_atomic

__all__ = ["error_set", "upsampling_factor", "upsample", "upsample_indices", "save_error_set", "load_error_set",
           "UpsampledDataset"]


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


def upsample_indices(n_samples: int, errors: Sequence[int] | np.ndarray, lambda_up: int = -1) -> np.ndarray:
    """Indices of the JTT training set: ``0..n_samples-1``, then each error index ``lambda`` more times (so it
    appears ``1 + lambda`` times in all).

    An empty error set (the first model made no mistake, e.g. when the training data hold no minority group) leaves
    the data unchanged, with a warning.

    Raises:
        ValueError: for error indices outside ``[0, n_samples)``.
    """
    errors = np.unique(np.asarray(errors, dtype=np.int64).reshape(-1))
    if errors.size and (errors.min() < 0 or errors.max() >= n_samples):
        raise ValueError(f"error indices must lie in [0, {n_samples}), got min {errors.min()} max {errors.max()}")
    if errors.size == 0:
        warnings.warn("JTT error set is empty: the first model misclassifies no training sample; training on the "
                      "data as it is", RuntimeWarning, stacklevel=2)
        return np.arange(n_samples)
    extra = upsampling_factor(n_samples, int(errors.size), lambda_up)
    return np.concatenate([np.arange(n_samples), np.repeat(errors, extra)])


def upsample(data: Sequence[Any], errors: Sequence[int] | np.ndarray, lambda_up: int = -1) -> list[Any]:
    """The JTT training set as a list: every item of ``data``, with each index in ``errors`` repeated ``1 + lambda``
    times (see :func:`upsample_indices`)."""
    return [data[i] for i in upsample_indices(len(data), errors, lambda_up)]


def save_error_set(path: str | os.PathLike, errors: Sequence[int] | np.ndarray, n_samples: int,
                   **info: Any) -> Path:
    """Write an error set as JSON (atomically): ``{"n_samples", "errors", **info}``."""
    errors = sorted(int(i) for i in np.asarray(errors).reshape(-1))
    return write_json_atomic(path, {"n_samples": int(n_samples), "n_errors": len(errors), **info, "errors": errors})


def load_error_set(path: str | os.PathLike, n_samples: int | None = None) -> np.ndarray:
    """Read an error set written by :func:`save_error_set`.

    Raises:
        FileNotFoundError: naming the file (the first JTT stage has not run).
        ValueError: naming the file when it is malformed or was computed for another number of samples.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"JTT error set {path} does not exist: run the ERM stage first")
    try:
        record = json.loads(path.read_text())
        raw = np.asarray(record["errors"]).reshape(-1)
        stored = int(record["n_samples"])
        if raw.size and (not np.issubdtype(raw.dtype, np.integer)):
            raise ValueError(f"error indices must be integers, got {raw.dtype}")
        errors = raw.astype(np.int64)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"JTT error set {path} is malformed: {e}") from e
    if errors.size and (errors.min() < 0 or errors.max() >= stored):
        raise ValueError(f"JTT error set {path}: error indices must lie in [0, {stored})")
    if n_samples is not None and stored != n_samples:
        raise ValueError(f"JTT error set {path} was computed on {stored} training samples, but the data set has "
                         f"{n_samples}")
    return errors


class UpsampledDataset(Subset):
    """The JTT training set over an existing dataset (JTT step 3): each sample of the error set appears
    ``1 + lambda_up`` times (``-1``: balanced), without copying or re-caching the data.

    Given the path of an error-set file, the dataset reads it when it exists and again when the training it feeds
    starts: listed in ``train#handlers`` too, it re-reads the file at ``Events.STARTED`` and sets the trainer's epoch
    length to match. So the second stage can be built (e.g. by MONAI's property checks) before the first stage has
    written the file; until the file exists, the dataset has the base dataset's length and refuses to yield items.

    Args:
        dataset: the training dataset the error set indexes (e.g. the ERM stage's ``CacheDataset``).
        errors: error indices, or the path of a file written by :func:`save_error_set`.
        lambda_up: extra copies per error; ``-1`` gives ``int((N - |E|) / |E|) - 1``.
    """

    def __init__(self, dataset: Dataset, errors: str | os.PathLike | Sequence[int] | np.ndarray,
                 lambda_up: int = -1) -> None:
        super().__init__(dataset, list(range(len(dataset))))  # type: ignore[arg-type]
        self.source = Path(errors) if isinstance(errors, (str, os.PathLike)) else None
        self.requested_lambda = int(lambda_up)
        self.errors: np.ndarray | None = None
        self.lambda_up = 0
        if self.source is None:
            self._set(np.asarray(errors, dtype=np.int64))
        elif self.source.is_file():
            self.reload()

    def _set(self, errors: np.ndarray) -> None:
        n = len(self.dataset)  # type: ignore[arg-type]
        self.errors = np.unique(errors.reshape(-1))
        self.lambda_up = upsampling_factor(n, int(self.errors.size), self.requested_lambda) if self.errors.size else 0
        self.indices = upsample_indices(n, self.errors, self.requested_lambda).tolist()

    def reload(self) -> None:
        """Read the error-set file again (it may have been rewritten by the first stage)."""
        if self.source is not None:
            self._set(load_error_set(self.source, n_samples=len(self.dataset)))  # type: ignore[arg-type]

    def attach(self, engine: Any) -> None:
        """Re-read the error set when ``engine`` (the second-stage trainer) starts, and fix its epoch length."""
        from ignite.engine import Events

        def _start(engine: Any) -> None:
            self.reload()
            loader = getattr(engine, "data_loader", None)
            if loader is not None and hasattr(loader, "__len__"):
                engine.state.epoch_length = len(loader)

        engine.add_event_handler(Events.STARTED, _start)

    def _ensure_loaded(self) -> None:
        if self.errors is None:
            self.reload()  # raises FileNotFoundError, naming the file, while the first stage has not written it

    def __getitem__(self, index: int) -> Any:
        self._ensure_loaded()
        return super().__getitem__(index)

    def __getitems__(self, indices: list[int]) -> list[Any]:
        self._ensure_loaded()
        return super().__getitems__(indices)
