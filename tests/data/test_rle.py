"""Run-length coding of the SIIM-ACR masks (spatialspec.data.rle): exact inverses of independent per-run and
per-pixel references, and malformed encodings named by image."""

from __future__ import annotations

import numpy as np
import pytest

from spatialspec.data.rle import rle_decode, rle_encode


def loop_decode(rle: str, height: int, width: int) -> np.ndarray:
    """The per-run loop of the SIIM-ACR starter code (mask_functions.rle2mask), as an independent reference."""
    mask = np.zeros(width * height, dtype=bool)
    values = [int(v) for v in rle.split()]
    position = 0
    for start, length in zip(values[0::2], values[1::2]):
        position += start
        mask[position:position + length] = True
        position += length
    return mask.reshape(width, height).T


def loop_encode(mask: np.ndarray) -> str:
    """Per-pixel reference encoder over the column-major flattening."""
    flat = mask.T.reshape(-1)
    values, last_end, start = [], 0, None
    for i, v in enumerate(list(flat) + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            values += [start - last_end, i - start]
            last_end, start = i, None
    return " ".join(map(str, values)) if values else "-1"


def test_rle_hand_example():
    # 3 x 4 mask; column-major pixel order: column 0 = pixels 0-2, column 1 = 3-5, column 2 = 6-8, column 3 = 9-11
    mask = np.zeros((3, 4), bool)
    mask[0:2, 0] = True  # pixels 0, 1
    mask[:, 2] = True  # pixels 6, 7, 8
    mask[2, 3] = True  # pixel 11 (the last)
    # runs: (0, 2); start 6 = 4 after the end 2; length 3; start 11 = 2 after the end 9; length 1
    assert rle_encode(mask) == "0 2 4 3 2 1"
    np.testing.assert_array_equal(rle_decode("0 2 4 3 2 1", 3, 4), mask)
    np.testing.assert_array_equal(rle_decode(" 0 2  4 3\t2 1 ", 3, 4), mask)


@pytest.mark.parametrize("shape", [(1024, 1024), (64, 64), (7, 13), (1, 9), (9, 1)])
@pytest.mark.parametrize("density", [0.01, 0.3, 0.9])
def test_rle_round_trip_random(shape, density):
    rng = np.random.default_rng(int(density * 100) + shape[0])
    mask = rng.random(shape) < density
    rle = rle_encode(mask)
    decoded = rle_decode(rle, *shape)
    assert decoded.shape == shape and decoded.dtype == bool
    np.testing.assert_array_equal(decoded, mask)
    assert rle_encode(decoded) == rle
    if mask.size <= 100:
        assert rle == loop_encode(mask)
    np.testing.assert_array_equal(loop_decode(rle, *shape), mask)


def test_rle_empty_full_and_edges():
    empty = np.zeros((5, 6), bool)
    assert rle_encode(empty) == "-1"
    np.testing.assert_array_equal(rle_decode("-1", 5, 6), empty)
    np.testing.assert_array_equal(rle_decode(" -1", 5, 6), empty)
    full = np.ones((5, 6), bool)
    assert rle_encode(full) == "0 30"
    np.testing.assert_array_equal(rle_decode("0 30", 5, 6), full)
    # a run touching the end: the last column's last pixel, and the first pixel
    edges = np.zeros((5, 6), bool)
    edges[0, 0] = edges[4, 5] = True
    assert rle_encode(edges) == "0 1 28 1"
    np.testing.assert_array_equal(rle_decode("0 1 28 1", 5, 6), edges)
    # a run of the whole last column ends exactly at the end
    tail = np.zeros((5, 6), bool)
    tail[:, 5] = True
    assert rle_encode(tail) == "25 5"
    np.testing.assert_array_equal(rle_decode("25 5", 5, 6), tail)


def test_rle_decode_accepts_non_canonical_runs():
    # zero-length runs and adjacent runs (relative start 0) decode like the reference loop
    for rle in ("3 0 2 2", "2 2 0 3", "0 0 0 0"):
        np.testing.assert_array_equal(rle_decode(rle, 4, 4), loop_decode(rle, 4, 4))


def test_rle_of_integer_mask_and_wrong_dims():
    mask = np.zeros((4, 4), np.uint8)
    mask[1, 1] = 255
    assert rle_encode(mask) == "5 1"
    with pytest.raises(ValueError, match="2-D"):
        rle_encode(np.zeros((2, 2, 2)))


@pytest.mark.parametrize("rle, message", [
    ("1 2 3", "odd number of values"),
    ("0 -3", "negative"),
    ("-5 2", "negative"),
    ("10 7", "past the end"),
    ("0 16 0 1", "past the end"),
    ("9223372036854775807 9223372036854775807", "past the end"),
    ("1 2.5", "other than integers"),
    ("1,2", "other than integers"),
    ("abc", "other than integers"),
    ("", "empty"),
    ("   ", "empty"),
])
def test_rle_malformed_names_image(rle, message):
    with pytest.raises(ValueError, match=rf"ImageId 1\.2\.3\.4.*{message}"):
        rle_decode(rle, 4, 4, image_id="1.2.3.4")
    with pytest.raises(ValueError, match=message):
        rle_decode(rle, 4, 4)


# ----------------------------------------------------------------------------------------------- CSV files
