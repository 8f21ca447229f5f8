"""JTT's error set and upsampled training set on a hand-made set."""

from __future__ import annotations

import numpy as np
import pytest

from spatialspec.robust import error_set, upsample, upsampling_factor


def test_error_set():
    assert error_set([1, 0, 1, 1, 0], [1, 1, 0, 1, 0]).tolist() == [1, 2]
    assert error_set(np.array([0, 0]), np.array([0, 0])).tolist() == []
    with pytest.raises(ValueError, match="same length"):
        error_set([0, 1], [0])


@pytest.mark.parametrize("n, e, lam, expected", [(10, 2, 3, 3), (10, 2, -1, 3), (10, 3, -1, 1), (10, 5, -1, 0),
                                                 (10, 0, -1, 0), (10, 9, -1, 0)])
def test_upsampling_factor(n, e, lam, expected):
    # balanced: int((N - |E|) / |E|) - 1, e.g. int(8 / 2) - 1 = 3 and int(7 / 3) - 1 = 1
    assert upsampling_factor(n, e, lam) == expected


def test_upsample_repeats_errors():
    data = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
    out = upsample(data, [1, 4], lambda_up=2)
    assert len(out) == 10 + 2 * 2
    assert out[:10] == data
    assert out.count("b") == 3 and out.count("e") == 3 and out.count("a") == 1
    balanced = upsample(data, [1, 4])  # lambda = int(8 / 2) - 1 = 3
    assert balanced.count("b") == 4


def test_upsample_empty_error_set_warns_and_keeps_data():
    with pytest.warns(RuntimeWarning, match="error set is empty"):
        assert upsample([1, 2, 3], []) == [1, 2, 3]


def test_upsample_invalid():
    with pytest.raises(ValueError, match="error indices"):
        upsample([1, 2], [5])
    with pytest.raises(ValueError, match="lambda_up"):
        upsampling_factor(4, 1, -2)
