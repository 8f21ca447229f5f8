"""The synthetic data model of spurious features (Saab et al., Sec. 3.2.2, Fig. 2).

Each image is ``n x n`` Gaussian noise N(0, sigma^2). An abnormal image (y = 1, probability ``mu_y``) carries an
``a x a`` block of N(mu_a, sigma^2) pixels (the abnormal mask Y); an image with the spurious feature (s = 1)
carries a ``b x b`` block of N(mu_s, sigma^2) pixels (the spurious mask S). On the training split
P(s = 1 | y = 1) = rho and P(s = 1 | y = 0) = 0; on the validation and test splits s ~ Bernoulli(0.5) independent
of y, so the correlation the model could learn is broken. Blocks are placed uniformly at random among the
placements where they do not overlap.

The paper's values are the defaults: m = 150, n = 40, mu_y = 0.9, rho = 1, mu_a = 2, mu_s = -10, sigma = 1,
a = 8, b = 12.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from spatialspec.errors import InputError

__all__ = ["SyntheticParams", "generate_split", "parse_synthetic_overrides", "cached_splits", "SPLITS"]

SPLITS = ("training", "validation", "test")
#: the splits generated inside :func:`cached_splits`, by (params, split, seed); ``None`` outside it
_CACHE: dict[tuple[Any, str, int], list[dict[str, Any]]] | None = None


@dataclass(frozen=True)
class SyntheticParams:
    """Parameters of the synthetic data model (Sec. 3.2.2); the defaults are the paper's.

    Args:
        m: number of training images.
        n: image side in pixels (images are n x n).
        mu_y: P(y = 1), on every split.
        rho: P(s = 1 | y = 1) on the training split (P(s = 1 | y = 0) = 0 there).
        mu_a: mean of the abnormal pixels.
        mu_s: mean of the spurious pixels (|mu_a| < |mu_s| makes the spurious feature the easier one).
        sigma: standard deviation of every pixel.
        a: side of the abnormal block.
        b: side of the spurious block.
        n_val: number of validation images (test distribution: s independent of y); used to pick the checkpoint.
        n_test: number of test images (s ~ Bernoulli(0.5) independent of y).
    """

    m: int = 150
    n: int = 40
    mu_y: float = 0.9
    rho: float = 1.0
    mu_a: float = 2.0
    mu_s: float = -10.0
    sigma: float = 1.0
    a: int = 8
    b: int = 12
    n_val: int = 300
    n_test: int = 1000

    def __post_init__(self) -> None:
        for name in ("m", "n", "a", "b", "n_val", "n_test"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"synthetic parameter {name} must be an integer >= 1, got {value!r}")
        for name in ("mu_y", "rho", "mu_a", "mu_s", "sigma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(value):
                raise InputError(f"synthetic parameter {name} must be a finite number, got {value!r}")
        for name in ("mu_y", "rho"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise InputError(f"synthetic parameter {name} must lie in [0, 1], got {value!r}")
        if not float(self.sigma) > 0:
            raise InputError(f"synthetic parameter sigma must be > 0, got {self.sigma!r}")
        for name in ("a", "b"):
            if getattr(self, name) > self.n:
                raise InputError(f"synthetic parameter {name}={getattr(self, name)} exceeds the image size n={self.n}")
        if self.a + self.b > self.n:
            raise InputError(
                f"synthetic parameters a={self.a} and b={self.b}: a + b must be <= n={self.n} so that the abnormal "
                "and spurious blocks can be placed without overlapping"
            )

    def split_size(self, split: str) -> int:
        """Number of images of ``split`` (``training``, ``validation`` or ``test``)."""
        return {"training": self.m, "validation": self.n_val, "test": self.n_test}[_check_split(split)]

    def replace(self, **changes: Any) -> SyntheticParams:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a plain dict (for MLflow params and results files)."""
        return dataclasses.asdict(self)


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return split


def parse_synthetic_overrides(items: list[str] | dict[str, Any] | None, base: SyntheticParams | None = None
                              ) -> SyntheticParams:
    """Build parameters from ``KEY=VALUE`` strings (the CLI's ``--synthetic mu_s=8``) or a dict.

    Raises:
        InputError: (a ``ValueError``) naming the key if it is not a parameter or its value does not parse.
    """
    base = base or SyntheticParams()
    if not items:
        return base
    if isinstance(items, str):
        items = [items]
    pairs = items.items() if isinstance(items, dict) else [_split_pair(item) for item in items]
    types = {f.name: f.type for f in dataclasses.fields(SyntheticParams)}
    changes: dict[str, Any] = {}
    for key, value in pairs:
        if key not in types:
            raise InputError(f"unknown synthetic parameter {key!r}: expected one of {', '.join(types)}")
        cast = int if types[key] in ("int", int) else float
        try:
            changes[key] = cast(value) if cast is float else _as_int(value)
        except (TypeError, ValueError):
            raise InputError(f"synthetic parameter {key}: cannot read {value!r} as {cast.__name__}") from None
    return base.replace(**changes)


def _split_pair(item: str) -> tuple[str, str]:
    key, sep, value = str(item).partition("=")
    if not sep or not key.strip():
        raise InputError(f"synthetic override {item!r} must look like KEY=VALUE, e.g. mu_s=-8")
    return key.strip(), value.strip()


def _as_int(value: Any) -> int:
    as_float = float(value)
    if not as_float.is_integer():
        raise ValueError(value)
    return int(as_float)


def _split_rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLITS.index(split)]))


def _place_pair(rng: np.random.Generator, n: int, a: int, b: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Draw the top-left corners of an a x a and a b x b block, uniformly over non-overlapping placements."""
    pa, pb = n - a + 1, n - b + 1
    starts_a, starts_b = np.arange(pa), np.arange(pb)
    # apart[i, j]: along one axis, an a-block at i and a b-block at j do not overlap
    apart = (starts_b[None, :] + b <= starts_a[:, None]) | (starts_b[None, :] >= starts_a[:, None] + a)
    free = apart.sum(axis=1)  # per a-position, number of b-positions apart on that axis
    # valid b placements for a at (r, c): apart on rows OR apart on columns
    counts = pb * pb - (pb - free)[:, None] * (pb - free)[None, :]
    weights = counts.reshape(-1) / counts.sum()
    ar, ac = divmod(int(rng.choice(pa * pa, p=weights)), pa)
    valid = apart[ar][:, None] | apart[ac][None, :]
    br, bc = divmod(int(rng.choice(np.flatnonzero(valid.reshape(-1)))), pb)
    return (ar, ac), (br, bc)


def generate_split(params: SyntheticParams | None = None, split: str = "training", seed: int = 0
                   ) -> list[dict[str, Any]]:
    """Generate one split of the synthetic data set as MONAI-style dicts (Sec. 3.2.2).

    Args:
        params: the data-model parameters (the paper's by default).
        split: ``training`` (s correlated with y through rho), ``validation`` or ``test`` (s independent of y).
        seed: the same (params, split, seed) always gives the same data; splits are independent of each other.

    Returns:
        a list of dicts with ``image`` (1 x n x n float32), ``label`` (the abnormal mask Y, 1 x n x n float32),
        ``spurious_mask`` (S, 1 x n x n float32), ``y`` and ``s`` (ints), and ``id``.
    """
    params = params or SyntheticParams()
    split = _check_split(split)
    if _CACHE is None:
        return _generate_split(params, split, int(seed))
    key = (params, split, int(seed))
    if key not in _CACHE:
        _CACHE[key] = _generate_split(params, split, int(seed))
    # the cache keeps its own arrays: a caller that changes its samples in place changes no other run's data
    return [{k: v.copy() if isinstance(v, np.ndarray) else v for k, v in sample.items()} for sample in _CACHE[key]]


@contextmanager
def cached_splits() -> Iterator[None]:
    """Within the block, :func:`generate_split` generates each (params, split, seed) once and hands out copies of it
    afterwards: the runs of a study that share a seed and a data model (its levels, models and scores) and their test
    evaluation read the same splits instead of generating them per run and pass. The splits are the same either way
    (a split is a function of its params, split and seed); nested blocks share the outermost one's cache, which is
    dropped when that block ends. Not for concurrent use from several threads.

    Example:
        >>> with cached_splits():
        ...     first = generate_split(SyntheticParams(m=4, n=16, a=4, b=4), "training", 0)
        ...     again = generate_split(SyntheticParams(m=4, n=16, a=4, b=4), "training", 0)
        >>> bool((first[0]["image"] == again[0]["image"]).all()), first[0]["image"] is again[0]["image"]
        (True, False)
    """
    global _CACHE
    outermost = _CACHE is None
    if outermost:
        _CACHE = {}
    try:
        yield
    finally:
        if outermost:
            _CACHE = None


def _generate_split(params: SyntheticParams, split: str, seed: int) -> list[dict[str, Any]]:
    """:func:`generate_split` without the cache."""
    rng = _split_rng(seed, split)
    size, n, a, b = params.split_size(split), params.n, params.a, params.b
    y = (rng.random(size) < params.mu_y).astype(np.int64)
    if split == "training":
        s = np.where(y == 1, rng.random(size) < params.rho, False).astype(np.int64)
    else:
        s = (rng.random(size) < 0.5).astype(np.int64)
    noise = rng.normal(0.0, params.sigma, size=(size, 1, n, n)).astype(np.float32)
    samples = []
    for i in range(size):
        mask_y = np.zeros((1, n, n), np.float32)
        mask_s = np.zeros((1, n, n), np.float32)
        if y[i] and s[i]:
            (ar, ac), (br, bc) = _place_pair(rng, n, a, b)
        else:
            ar, ac = rng.integers(0, n - a + 1, size=2)
            br, bc = rng.integers(0, n - b + 1, size=2)
        if y[i]:
            mask_y[0, ar : ar + a, ac : ac + a] = 1.0
        if s[i]:
            mask_s[0, br : br + b, bc : bc + b] = 1.0
        image = noise[i] + params.mu_a * mask_y + params.mu_s * mask_s
        samples.append({"id": f"{split}_{i:05d}", "image": image, "label": mask_y, "spurious_mask": mask_s,
                        "y": int(y[i]), "s": int(s[i])})
    return samples
