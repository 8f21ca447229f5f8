"""Benchmark: spatialspec's vectorised SIIM-ACR run-length decoder against the straightforward per-run Python loop,
in the same process, on 1024 x 1024 masks. Goal: decode ratio >= 10.

Two loops are timed: the SIIM-ACR starter code's ``rle2mask`` (``mask_functions.py``, also the authors' code: values
parsed with ``int``, a float mask, one slice assignment per run over numpy scalars; its transposed 0/255 mask is
what their pipeline uses), and a tuned variant of the same loop (Python ints, a boolean mask). Both parse the string
like the vectorised decoder does, and all three masks are checked equal.

The masks are pneumothorax-like: irregular blobs (a smoothed random field, thresholded) inside one lung-shaped
region, one to three instances united, so that each mask has hundreds to thousands of runs. Encoding is timed too,
against a per-pixel loop (the starter code's ``mask2rle``).

    .venv/bin/python scripts/bench_rle.py [--masks 40] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from scipy import ndimage

from spatialspec.data.rle import rle_decode, rle_encode

SIDE = 1024


def starter_decode(rle: str, height: int, width: int) -> np.ndarray:
    """The starter code's ``rle2mask`` (as in the authors' ``src/data/cxr.py``), transposed like their callers do."""
    mask = np.zeros(width * height)
    array = np.asarray([int(x) for x in rle.split()])
    starts = array[0::2]
    lengths = array[1::2]
    current_position = 0
    for index, start in enumerate(starts):
        current_position += start
        mask[current_position:current_position + lengths[index]] = 255
        current_position += lengths[index]
    return mask.reshape(width, height).T


def loop_decode(rle: str, height: int, width: int) -> np.ndarray:
    """The same per-run loop, tuned: Python ints and a boolean mask."""
    mask = np.zeros(width * height, dtype=bool)
    array = [int(x) for x in rle.split()]
    starts, lengths = array[0::2], array[1::2]
    position = 0
    for start, length in zip(starts, lengths):
        position += start
        mask[position:position + length] = True
        position += length
    return mask.reshape(width, height).T


def loop_encode(mask: np.ndarray) -> str:
    """The per-pixel loop of the starter code's ``mask2rle`` (column-major order, relative starts)."""
    flat = mask.T.reshape(-1).tolist()
    values, last_end, run_start = [], 0, -1
    for i, v in enumerate(flat):
        if v and run_start < 0:
            run_start = i
        elif not v and run_start >= 0:
            values += [run_start - last_end, i - run_start]
            last_end, run_start = i, -1
    if run_start >= 0:
        values += [run_start - last_end, len(flat) - run_start]
    return " ".join(map(str, values)) if values else "-1"


def pneumothorax_mask(rng: np.random.Generator) -> np.ndarray:
    """A union of 1-3 irregular blobs inside one lung-shaped ellipse of a 1024 x 1024 image."""
    rows, cols = np.mgrid[:SIDE, :SIDE]
    cx = rng.choice([300, 724]) + rng.integers(-40, 40)
    lung = ((rows - 480) / 330) ** 2 + ((cols - cx) / 170) ** 2 <= 1
    mask = np.zeros((SIDE, SIDE), dtype=bool)
    for _ in range(rng.integers(1, 4)):
        field = ndimage.gaussian_filter(rng.standard_normal((SIDE // 4, SIDE // 4)), sigma=rng.uniform(1.5, 4))
        field = np.kron(field, np.ones((4, 4)))
        cy, cxx = rng.integers(200, 800), cx + rng.integers(-120, 120)
        region = ((rows - cy) / rng.uniform(60, 260)) ** 2 + ((cols - cxx) / rng.uniform(40, 160)) ** 2 <= 1
        mask |= region & lung & (field > np.quantile(field, rng.uniform(0.2, 0.6)))
    return mask


def _time(fn, arg, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*arg)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masks", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    masks = [pneumothorax_mask(rng) for _ in range(args.masks)]
    rles = [rle_encode(m) for m in masks]
    runs = [len(r.split()) // 2 for r in rles]
    pixels = [int(m.sum()) for m in masks]
    for mask, rle in zip(masks, rles):
        assert np.array_equal(rle_decode(rle, SIDE, SIDE), mask) and np.array_equal(loop_decode(rle, SIDE, SIDE), mask)
        assert np.array_equal(starter_decode(rle, SIDE, SIDE) > 0, mask)
    assert loop_encode(masks[0]) == rles[0]
    # warm-up, then each mask timed by every decoder in turn (best of --repeats)
    for fn in (rle_decode, loop_decode, starter_decode):
        fn(rles[0], SIDE, SIDE)
    times: dict = {fn: [] for fn in (rle_decode, loop_decode, starter_decode)}
    for rle in rles:
        for fn in times:
            times[fn].append(_time(fn, (rle, SIDE, SIDE), args.repeats))
    fast = times[rle_decode]
    n_enc = min(5, len(masks))
    fast_encode = [_time(rle_encode, (m,), args.repeats) for m in masks[:n_enc]]
    slow_encode = [_time(loop_encode, (m,), 1) for m in masks[:n_enc]]
    print(f"{len(masks)} masks of {SIDE} x {SIDE}: runs per mask median {statistics.median(runs):.0f} "
          f"(min {min(runs)}, max {max(runs)}), foreground pixels median {statistics.median(pixels):.0f}")
    print(f"decode, vectorised: {1e3 * sum(fast) / len(rles):.3f} ms/mask")
    for fn, name in ((starter_decode, "starter-code per-run loop (rle2mask)"), (loop_decode, "tuned per-run loop")):
        slow = times[fn]
        print(f"decode, {name}: {1e3 * sum(slow) / len(rles):.3f} ms/mask, ratio {sum(slow) / sum(fast):.1f}x "
              f"(per-mask median {statistics.median(s / f for s, f in zip(slow, fast)):.1f}x)")
    print(f"encode ({n_enc} masks): vectorised {1e3 * sum(fast_encode) / n_enc:.3f} ms/mask, per-pixel loop "
          f"{1e3 * sum(slow_encode) / n_enc:.1f} ms/mask, ratio {sum(slow_encode) / sum(fast_encode):.0f}x")


if __name__ == "__main__":
    main()
