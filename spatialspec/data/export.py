"""Writing a real data set as files (Saab et al. 2022, Sec. 5, App. A.1), shared by the SIIM-ACR and ISIC readers:
resizing images (area averaging) and masks (any-positive), PNG writing, a staging folder that makes the whole export
all-or-nothing, threaded mapping, stratified drawing and problem summaries."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from spatialspec.atomic import atomic_write

__all__ = ["resize_image", "resize_mask", "save_png", "StagedOutput", "map_threads", "stratified_take",
           "summarise_problems"]


def _target_size(size: int | Sequence[int]) -> tuple[int, int]:
    pair = (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)  # type: ignore[arg-type]
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    return pair  # type: ignore[return-value]

def resize_image(image: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """Resize a uint8 ``H x W`` or ``H x W x C`` image: area averaging when shrinking both axes (an exact block mean
    for integer factors, like the official 1024 -> 512 resize), antialiased bilinear otherwise.

    Returns:
        the resized uint8 image, same number of dimensions.
    """
    height, width = _target_size(size)
    array = np.asarray(image)
    if array.ndim not in (2, 3):
        raise ValueError(f"image must be H x W or H x W x C, got shape {array.shape}")
    if array.shape[:2] == (height, width):
        return array.astype(np.uint8, copy=True)
    planes = array[..., None] if array.ndim == 2 else array
    import torch  # imported on first resize: the data package is importable without torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32)).permute(2, 0, 1)[None]
    if height <= array.shape[0] and width <= array.shape[1]:
        out = F.interpolate(tensor, size=(height, width), mode="area")
    else:
        out = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    result = out[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    return result[..., 0] if array.ndim == 2 else result

def _any_overlap(counts: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Along ``axis``, count the positive source pixels overlapping each of ``n_out`` output pixels."""
    n_in = counts.shape[axis]
    i = np.arange(n_out)
    lo = (i * n_in) // n_out
    hi = -((-(i + 1) * n_in) // n_out)  # ceil
    cumulative = np.concatenate([np.zeros_like(np.take(counts, [0], axis=axis)), np.cumsum(counts, axis=axis)],
                                axis=axis)
    return np.take(cumulative, hi, axis=axis) - np.take(cumulative, lo, axis=axis)

def resize_mask(mask: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """Resize a 2-D mask so that an output pixel is positive iff any source pixel it overlaps is positive: max-pooling
    for integer factors (the authors' ``MaxPool2d(1024 // 512)``), and never losing a small abnormality.

    Returns:
        a boolean ``size`` mask.
    """
    height, width = _target_size(size)
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {array.shape}")
    counts = (array != 0).astype(np.int32)
    counts = _any_overlap(counts, height, axis=0)
    counts = _any_overlap(counts, width, axis=1)
    return counts > 0

def save_png(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as PNG in its own orientation (upright in viewers; MONAI's PILReader loads it as W x H)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    atomic_write(path, buffer.getvalue())

class StagedOutput:
    """Write files into a hidden folder of ``out`` and move them into place only when everything succeeded, so a
    failed run leaves ``out`` as it was (removed again if this run created it)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(dir=out, prefix=".staging-"))

    def write_png(self, rel: str, array: np.ndarray) -> None:
        save_png(self.root / rel, array)

    def commit(self, rels: Iterable[str]) -> None:
        for rel in rels:
            target = self.out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.root / rel, target)
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def abort(self) -> None:
        self.close()
        if self.created:
            try:
                self.out.rmdir()
            except OSError:
                pass

def map_threads(tasks: Sequence[Any], fn: Callable[[Any], Any], workers: int) -> list[Any]:
    """``fn`` over ``tasks`` in order, on ``workers`` threads (decoding and PNG compression release the GIL)."""
    if workers <= 1:
        return [fn(t) for t in tasks]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, tasks))


def summarise_problems(problems: Sequence[str], limit: int = 10) -> str:
    """The first ``limit`` problems on one line (a leading space, ``; `` between them, ``... and N more``), so the
    error that ends a data command names its culprits in the one line the command line prints."""
    shown = "; ".join(" ".join(str(p).split()) for p in problems[:limit])
    more = f"; ... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f" {shown}{more}"

def stratified_take(indices: np.ndarray, strata: np.ndarray, n_take: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n_take`` of ``indices`` at random, each stratum (``strata[indices]``) contributing in proportion to its
    size (largest remainder), so the strata's shares are kept to within one image each."""
    if n_take == 0:
        return indices[:0]
    keys, inverse = np.unique(strata[indices], return_inverse=True)
    sizes = np.bincount(inverse, minlength=keys.size)
    quota = sizes * n_take / indices.size
    take = np.floor(quota).astype(np.int64)
    short = n_take - int(take.sum())
    if short:
        order = np.lexsort((-sizes, -(quota - take)))  # largest remainder first, ties to the larger stratum
        take[order[:short]] += 1
    chosen = [rng.permutation(indices[inverse == k])[: take[k]] for k in range(keys.size)]
    return np.sort(np.concatenate(chosen))
