"""Run-length encoding of SIIM-ACR masks (Saab et al. 2022, Sec. 5, App. A.1): (start, length) pairs over the
column-major flattening of the mask, each start counted from the end of the previous run (the first from pixel 0).
:func:`rle_decode` and :func:`rle_encode` are exact inverses and vectorised; ``-1`` is the empty mask."""

from __future__ import annotations

import re

import numpy as np

__all__ = ["rle_decode", "rle_encode", "parse_rle"]

# optionally signed decimal integers separated by ASCII whitespace (what ``np.fromstring(sep=" ")`` splits on)
_RLE_SYNTAX = re.compile(r"[+-]?[0-9]+(?:[ \t\n\r\f\v]+[+-]?[0-9]+)*")


def _where(image_id: str | None) -> str:
    return f"ImageId {image_id}" if image_id is not None else "RLE"

def parse_rle(rle: str, image_id: str | None = None) -> np.ndarray | None:
    """The integers of a run-length encoding (``None`` for ``-1``), checked for syntax: integers, an even count, none
    negative."""
    text = str(rle).strip()
    if text == "-1":
        return None
    if not text:
        raise ValueError(f"{_where(image_id)}: empty run-length encoding (an empty mask is written -1)")
    # checked up front: numpy 2 raises on trailing non-integers, but numpy 1.x parses the leading integers of
    # "1 2.5" or "1,2" and only warns about the rest
    if not _RLE_SYNTAX.fullmatch(text):
        raise ValueError(f"{_where(image_id)}: run-length encoding holds something other than integers: "
                         f"{_preview(text)}")
    values = np.fromstring(text, dtype=np.int64, sep=" ")
    if values.size % 2:
        raise ValueError(f"{_where(image_id)}: run-length encoding has an odd number of values ({values.size}); "
                         "it must be (start, length) pairs")
    if values.min() < 0:
        raise ValueError(f"{_where(image_id)}: run-length encoding holds a negative value ({int(values.min())})")
    return values

def rle_decode(rle: str, height: int, width: int, image_id: str | None = None) -> np.ndarray:
    """Decode one SIIM-ACR run-length encoding into a ``height x width`` boolean mask (vectorised).

    ``rle`` is ``"-1"`` (empty mask) or whitespace-separated integer pairs (start, length); each start counts pixels
    from the end of the previous run (the first from pixel 0) along the column-major flattening of the mask.

    Returns:
        a ``(height, width)`` boolean array: a transposed view of the column-major buffer (no copy; use
        ``np.ascontiguousarray`` where a C-contiguous array is needed).

    Raises:
        ValueError: naming ``image_id`` when the encoding is empty, holds something other than integers, has an odd
            number of values, a negative value, or runs past the end of the mask.
    """
    height, width = int(height), int(width)
    if height < 1 or width < 1:
        raise ValueError(f"{_where(image_id)}: mask size must be positive, got {height} x {width}")
    n = height * width
    values = parse_rle(rle, image_id)
    if values is None:
        return np.zeros((width, height), dtype=bool).T
    # every value bounds the end of the last run from below, so checking each first keeps the sum from overflowing
    if values.max() > n or int(values.sum()) > n:
        raise ValueError(f"{_where(image_id)}: runs end at pixel {int(values.sum(dtype=np.float64))}, past the end of "
                         f"the {height} x {width} mask ({n} pixels)")
    # the values are the lengths of alternating background and foreground stretches: repeat False/True by them
    counts = np.append(values, n - values.sum())
    pattern = np.zeros(counts.size, dtype=bool)
    pattern[1::2] = True
    return np.repeat(pattern, counts).reshape(width, height).T

def rle_encode(mask: np.ndarray) -> str:
    """Encode a 2-D mask (nonzero = foreground) in the SIIM-ACR run-length format; ``"-1"`` for an empty mask.

    The exact inverse of :func:`rle_decode`: ``rle_decode(rle_encode(m), *m.shape)`` equals ``m != 0``.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (height x width), got shape {mask.shape}")
    flat = np.ravel(mask != 0, order="F")
    padded = np.concatenate(([False], flat, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    if edges.size == 0:
        return "-1"
    starts, ends = edges[0::2], edges[1::2]
    values = np.empty(edges.size, dtype=np.int64)
    values[0::2] = starts - np.concatenate(([0], ends[:-1]))
    values[1::2] = ends - starts
    return " ".join(map(str, values.tolist()))

def _preview(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
