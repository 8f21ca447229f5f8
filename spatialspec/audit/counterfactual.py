"""Counterfactual spurious audit: move the spurious feature in and out of test images and watch the score.

An extension beyond Saab et al. (2022): their synthetic data model (Sec. 3.2.2) places the spurious feature S in a
known region, and a data set with spurious masks does the same for real images. A model that relies on S (the
paper's binary-label failure mode, Sec. 3.2-3.3) changes its image score when S is inserted into an image without
it or removed from an image with it; a model that looks at the abnormality Y does not. The audit needs no test
subgroup labels: the spurious *mask* says where S is (an empty mask means the image has no spurious feature), and
the subgroup label ``s`` is never read.

Counterfactuals:

- **insertion** (:func:`insert_spurious`): the donor's S pixels are pasted into the target image. By default at the
  donor's own location, which keeps where the feature sits in real images (a chest drain, a ruler); if that region
  would cover the target's abnormality mask Y, it is translated to a position drawn uniformly among those that keep
  it inside the image and off Y, so the counterfactual never destroys the evidence for the label.
- **removal** (:func:`remove_spurious`): every S pixel is replaced by a pixel of the image's own background (outside
  S and outside Y), drawn uniformly with replacement. This resampling estimator reproduces the background's
  marginal intensity distribution without assuming a form for it: on the synthetic data, whose background is
  i.i.d. N(0, sigma^2), it draws from the same distribution as the generator; on real images it keeps skin tones or
  film grain that a Gaussian fit would not. Whole pixel vectors are drawn, so colour channels stay consistent. It
  does not reproduce spatial texture, which the synthetic data does not have.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

__all__ = ["insert_spurious", "remove_spurious", "counterfactual_audit", "AuditResult", "ShiftStats", "ScoreFn",
           "QUANTILES", "spatial_mask"]

# a batch of channel-first images, B x C x H x W float32, to B image scores
ScoreFn = Callable[[np.ndarray], Any]
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def spatial_mask(mask: Any, shape: Sequence[int], name: str = "mask") -> np.ndarray:
    """A boolean H x W mask from a mask array (H x W, or channel-first with any channel count: a pixel is in the
    mask when any channel is > 0.5, so 0/1 floats and 0/255 PNG masks both work).

    Raises:
        ValueError: naming ``name`` when its spatial shape is not ``shape`` (H, W).
    """
    array = np.asarray(mask)
    spatial = tuple(int(s) for s in shape[-2:])
    if array.ndim < 2 or tuple(array.shape[-2:]) != spatial:
        raise ValueError(f"{name} has shape {tuple(array.shape)}; its last two axes must be the image's {spatial}")
    return (array.reshape(-1, *spatial) > 0.5).any(axis=0)


def _image(image: Any, name: str = "image") -> np.ndarray:
    array = np.asarray(image)
    if array.ndim < 2:
        raise ValueError(f"{name} must have at least 2 (spatial) axes, got shape {array.shape}")
    return array


def _placements(region: np.ndarray, avoid: np.ndarray) -> np.ndarray:
    """Top-left corners (row, col) at which the crop ``region`` fits in ``avoid``'s frame without touching it."""
    from scipy.signal import correlate

    h, w = region.shape
    if not avoid.any():
        rows, cols = np.mgrid[0 : avoid.shape[0] - h + 1, 0 : avoid.shape[1] - w + 1]
        return np.stack([rows.ravel(), cols.ravel()], axis=1)
    overlap = correlate(avoid.astype(np.float64), region.astype(np.float64), mode="valid")
    return np.argwhere(overlap < 0.5)


def insert_spurious(image: Any, donor_image: Any, donor_mask: Any, rng: np.random.Generator | None = None,
                    avoid_mask: Any = None, placement: str = "same") -> tuple[np.ndarray, np.ndarray]:
    """Paste the donor's spurious region into ``image`` (the insertion counterfactual; module docstring).

    Args:
        image: the target, ``H x W`` or channel first ``C x H x W``.
        donor_image: an image with the spurious feature, same shape as ``image``.
        donor_mask: the donor's spurious mask S (``H x W`` or ``1 x H x W``); must not be empty.
        rng: draws the position when the region has to move (``placement="random"``, or a clash with
            ``avoid_mask``); a fixed seed gives a fixed result.
        avoid_mask: pixels of the target the pasted region must not cover, normally its abnormality mask Y.
        placement: ``same`` keeps the donor's location unless it covers ``avoid_mask``; ``random`` always draws a
            translation uniformly among those that keep the region inside the image and off ``avoid_mask``.

    Returns:
        ``(new_image, inserted_mask)``: a copy of ``image`` whose ``inserted_mask`` pixels hold the donor's S
        pixels (in the donor's spatial arrangement), and that boolean ``H x W`` mask.

    Raises:
        ValueError: on shape mismatches, an empty donor mask, an unknown ``placement``, or no position off
            ``avoid_mask``.
    """
    image, donor = _image(image), _image(donor_image, "donor_image")
    if image.shape != donor.shape:
        raise ValueError(f"donor_image shape {donor.shape} differs from image shape {image.shape}")
    if placement not in ("same", "random"):
        raise ValueError(f"placement must be 'same' or 'random', got {placement!r}")
    source = spatial_mask(donor_mask, image.shape, "donor_mask")
    if not source.any():
        raise ValueError("donor_mask is empty: the donor has no spurious feature to insert")
    avoid = (np.zeros(source.shape, bool) if avoid_mask is None
             else spatial_mask(avoid_mask, image.shape, "avoid_mask"))
    target = source
    if placement == "random" or (source & avoid).any():
        rows, cols = np.flatnonzero(source.any(axis=1)), np.flatnonzero(source.any(axis=0))
        r0, c0 = rows[0], cols[0]
        region = source[r0 : rows[-1] + 1, c0 : cols[-1] + 1]
        corners = _placements(region, avoid)
        if len(corners) == 0:
            raise ValueError("no position for the spurious region inside the image that avoids avoid_mask")
        rng = rng if rng is not None else np.random.default_rng()
        dr, dc = corners[rng.integers(len(corners))] - (r0, c0)
        target = np.roll(source, (dr, dc), axis=(0, 1))  # the region's box stays inside the frame: no wrap-around
        out = image.copy()
        out[..., target] = donor[..., source]  # row-major order matches under a pure translation
        return out, target
    out = image.copy()
    out[..., target] = donor[..., target]
    return out, target


def remove_spurious(image: Any, spurious_mask: Any, rng: np.random.Generator | None = None,
                    background_mask: Any = None) -> np.ndarray:
    """Replace the spurious region by the image's own background (the removal counterfactual; module docstring).

    Each pixel of S gets the value (all channels) of a background pixel drawn uniformly with replacement.

    Args:
        image: ``H x W`` or channel first ``C x H x W``.
        spurious_mask: S; an empty mask returns an unchanged copy.
        rng: the random generator (a fixed seed gives a fixed result).
        background_mask: where the background may be sampled, normally outside the abnormality mask Y (pixels of S
            are always excluded); ``None`` samples from every pixel outside S.

    Returns:
        a copy of ``image`` with no original pixel left in S.

    Raises:
        ValueError: on a mask of the wrong shape, or an empty background.
    """
    image = _image(image)
    region = spatial_mask(spurious_mask, image.shape, "spurious_mask")
    out = image.copy()
    if not region.any():
        return out
    background = ~region
    if background_mask is not None:
        background &= spatial_mask(background_mask, image.shape, "background_mask")
    pool = np.flatnonzero(background)
    if len(pool) == 0:
        raise ValueError("remove_spurious: no background pixel to sample from (the spurious and background masks "
                         "leave nothing)")
    rng = rng if rng is not None else np.random.default_rng()
    flat = out.reshape(*out.shape[:-2], -1)
    flat[..., np.flatnonzero(region)] = flat[..., rng.choice(pool, size=int(region.sum()), replace=True)]
    return out


@dataclass(frozen=True)
class ShiftStats:
    """Distribution of the image-score change ``score(counterfactual) - score(original)`` of one direction."""

    n: int
    mean: float
    median: float
    std: float
    mean_abs: float
    min: float
    max: float
    quantiles: dict[str, float]

    @classmethod
    def of(cls, deltas: np.ndarray) -> ShiftStats:
        """Statistics of ``deltas`` (NaN for an empty array)."""
        d = np.asarray(deltas, dtype=np.float64)
        if d.size == 0:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan, nan, nan, {f"q{round(q * 100):02d}": nan for q in QUANTILES})
        return cls(int(d.size), float(d.mean()), float(np.median(d)), float(d.std()), float(np.abs(d).mean()),
                   float(d.min()), float(d.max()),
                   {f"q{round(q * 100):02d}": float(v) for q, v in zip(QUANTILES, np.quantile(d, QUANTILES))})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"n": self.n, "mean": self.mean, "median": self.median, "std": self.std, "mean_abs": self.mean_abs,
                "min": self.min, "max": self.max, "quantiles": dict(self.quantiles)}


@dataclass(frozen=True)
class AuditResult:
    """Outcome of :func:`counterfactual_audit`.

    Attributes:
        insertion: score change where S was inserted (images whose spurious mask is empty).
        removal: score change where S was removed (images whose spurious mask is not empty).
        mean_abs_shift: mean ``|score change|`` over all images, both directions: the headline reliance figure.
        auroc_original: AUROC of the labels ``y`` against the original scores.
        auroc_removed: AUROC against the scores with every spurious feature removed (originals where S is absent).
        auroc_inserted: AUROC against the scores with S in every image (originals where S is present).
        ids, has_spurious, y, score_original, score_counterfactual, donor: per image, in entry order (``donor`` is
            the index of the insertion donor, -1 for removals).
    """

    insertion: ShiftStats
    removal: ShiftStats
    mean_abs_shift: float
    auroc_original: float
    auroc_removed: float
    auroc_inserted: float
    ids: list[str] = field(repr=False)
    has_spurious: np.ndarray = field(repr=False)
    y: np.ndarray | None = field(repr=False)
    score_original: np.ndarray = field(repr=False)
    score_counterfactual: np.ndarray = field(repr=False)
    donor: np.ndarray = field(repr=False)

    @property
    def delta(self) -> np.ndarray:
        """Per-image score change ``score_counterfactual - score_original``."""
        return self.score_counterfactual - self.score_original

    def summary(self) -> dict[str, Any]:
        """The aggregate figures as a JSON-ready dict (NaN for an undefined AUROC)."""
        return {"n": len(self.ids), "n_with_spurious": int(self.has_spurious.sum()),
                "n_without_spurious": int((~self.has_spurious).sum()), "mean_abs_shift": self.mean_abs_shift,
                "insertion": self.insertion.to_dict(), "removal": self.removal.to_dict(),
                "auroc_original": self.auroc_original, "auroc_removed": self.auroc_removed,
                "auroc_inserted": self.auroc_inserted}

    def to_dict(self, per_image: bool = True) -> dict[str, Any]:
        """:meth:`summary`, plus one record per image when ``per_image``."""
        out = self.summary()
        if per_image:
            delta = self.delta
            out["images"] = [
                {"id": self.ids[i], "has_spurious": bool(self.has_spurious[i]),
                 "y": None if self.y is None else int(self.y[i]),
                 "counterfactual": "removal" if self.has_spurious[i] else "insertion",
                 "donor": None if self.donor[i] < 0 else self.ids[self.donor[i]],
                 "score_original": float(self.score_original[i]),
                 "score_counterfactual": float(self.score_counterfactual[i]), "delta": float(delta[i])}
                for i in range(len(self.ids))]
        return out


def _auroc(y: np.ndarray | None, scores: np.ndarray) -> float:
    if y is None or len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, scores))


def _labels(entries: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
    if not all("y" in e for e in entries):
        return None
    y = np.asarray([int(e["y"]) for e in entries])
    if not np.isin(y, (0, 1)).all():
        raise ValueError("entry field 'y' must be 0 or 1")
    return y


def _scores(score_fn: ScoreFn, batch: list[np.ndarray]) -> np.ndarray:
    images = np.stack(batch).astype(np.float32, copy=False)
    out = score_fn(images)
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    out = np.asarray(out, dtype=np.float64).reshape(-1)
    if out.shape[0] != len(batch):
        raise ValueError(f"score_fn returned {out.shape[0]} scores for a batch of {len(batch)} images")
    return out


def counterfactual_audit(score_fn: ScoreFn, entries: Sequence[Mapping[str, Any]], seed: int = 0,
                         batch_size: int = 64, placement: str = "same",
                         loader: Callable[[Mapping[str, Any], str], np.ndarray] | None = None) -> AuditResult:
    """Score every image and its counterfactual: S removed where the spurious mask is not empty, S inserted from a
    random donor (drawn uniformly among images with S) where it is empty.

    Args:
        score_fn: maps a ``B x C x H x W`` float32 batch to ``B`` image scores (array, tensor or list).
        entries: dicts with ``image`` and ``spurious_mask`` (arrays, or file paths read by ``loader``), optionally
            ``label`` (the abnormality mask Y: insertion keeps off it and removal does not sample from it), ``y``
            (for the AUROCs) and ``id``. The subgroup field ``s`` is not read.
        seed: seeds the donors and the counterfactual pixels; the same seed gives the same audit.
        batch_size: images per ``score_fn`` call.
        placement: where inserted regions go, see :func:`insert_spurious`.
        loader: ``loader(entry, key)`` returns the array of ``entry[key]`` (default:
            :func:`spatialspec.audit.data.load_array`, which reads arrays and image files).

    Raises:
        ValueError: naming the entry when it lacks a spurious mask or its image shape differs from the first one's;
            when no image has, or no image lacks, the spurious feature; on a bad ``batch_size``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(entries) == 0:
        raise ValueError("the audit needs at least one entry")
    if loader is None:
        from .data import load_array as loader
    for i, entry in enumerate(entries):
        if entry.get("spurious_mask") is None:
            raise ValueError(f"entry {i} ({entry.get('id', 'no id')}) has no 'spurious_mask': the audit needs "
                             "spurious masks")
    ids = [str(e.get("id", i)) for i, e in enumerate(entries)]
    first = _image(loader(entries[0], "image"), f"image of entry 0 ({ids[0]})")
    shape = first.shape
    masks = np.stack([spatial_mask(loader(e, "spurious_mask"), shape, f"spurious_mask of entry {i} ({ids[i]})")
                      for i, e in enumerate(entries)])
    has_s = masks.reshape(len(entries), -1).any(axis=1)
    with_s, without_s = np.flatnonzero(has_s), np.flatnonzero(~has_s)
    if len(with_s) == 0:
        raise ValueError("no entry has a spurious feature (every spurious mask is empty): nothing to remove and no "
                         "donor to insert from")
    if len(without_s) == 0:
        raise ValueError("every entry has a spurious feature (no spurious mask is empty): no image to insert into")
    y = _labels(entries)
    rng = np.random.default_rng(seed)
    donor = np.full(len(entries), -1, dtype=np.int64)
    donor[without_s] = rng.choice(with_s, size=len(without_s), replace=True)

    def image_of(i: int) -> np.ndarray:
        array = first if i == 0 else _image(loader(entries[i], "image"), f"image of entry {i} ({ids[i]})")
        if array.shape != shape:
            raise ValueError(f"image of entry {i} ({ids[i]}) has shape {array.shape}, the first has {shape}: the "
                             "audit needs images of one size")
        return array

    def y_mask(i: int) -> np.ndarray | None:
        if entries[i].get("label") is None:
            return None
        return spatial_mask(loader(entries[i], "label"), shape, f"label of entry {i} ({ids[i]})")

    original, counterfactual = np.empty(len(entries)), np.empty(len(entries))
    for start in range(0, len(entries), batch_size):
        stop = min(start + batch_size, len(entries))
        batch, altered = [], []
        for i in range(start, stop):
            image, abnormal = image_of(i), y_mask(i)
            if has_s[i]:
                background = None if abnormal is None else ~abnormal
                altered.append(remove_spurious(image, masks[i], rng, background))
            else:
                j = int(donor[i])
                altered.append(insert_spurious(image, image_of(j), masks[j], rng, abnormal, placement)[0])
            batch.append(image)
        original[start:stop] = _scores(score_fn, batch)
        counterfactual[start:stop] = _scores(score_fn, altered)
    delta = counterfactual - original
    removed = np.where(has_s, counterfactual, original)
    inserted = np.where(has_s, original, counterfactual)
    return AuditResult(
        insertion=ShiftStats.of(delta[~has_s]), removal=ShiftStats.of(delta[has_s]),
        mean_abs_shift=float(np.abs(delta).mean()), auroc_original=_auroc(y, original),
        auroc_removed=_auroc(y, removed), auroc_inserted=_auroc(y, inserted), ids=ids, has_spurious=has_s, y=y,
        score_original=original, score_counterfactual=counterfactual, donor=donor)
