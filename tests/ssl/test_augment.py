"""The random views of Seg-SSL (Saab et al. 2022, Sec. 4.2.1): per-image flips and intensity jitter."""

from __future__ import annotations

import pytest
import torch

from spatialspec.ssl import RandomFlipIntensity, apply_flips


def test_apply_flips_matches_per_item_flips_and_is_an_involution():
    x = torch.arange(4 * 2 * 3 * 5, dtype=torch.float32).reshape(4, 2, 3, 5)
    flips = torch.tensor([[False, False], [True, False], [False, True], [True, True]])
    out = apply_flips(x, flips)
    for i in range(4):
        dims = [d + 2 for d in range(2) if flips[i, d]]
        expected = x[i : i + 1].flip(dims) if dims else x[i : i + 1]
        assert torch.equal(out[i : i + 1], expected)
    assert torch.equal(apply_flips(out, flips), x)
    with pytest.raises(ValueError, match="flips"):
        apply_flips(x, torch.zeros(3, 2, dtype=torch.bool))


def test_random_view_is_the_flip_then_a_per_image_affine_map():
    torch.manual_seed(1)
    x = torch.randn(6, 1, 8, 8)
    flips_only, flips = RandomFlipIntensity(scale=0.0, shift=0.0)(x)
    assert torch.equal(flips_only, apply_flips(x, flips))
    view, flips = RandomFlipIntensity(flip_prob=1.0, scale=0.2, shift=0.3)(x)
    assert bool(flips.all())
    flipped = x.flip((2, 3))
    for i in range(6):
        # view = a * flipped + b: fit a and b by least squares, check the fit is exact and within the ranges
        design = torch.stack([flipped[i].reshape(-1), torch.ones(64)], dim=1)
        solution = torch.linalg.lstsq(design, view[i].reshape(-1, 1)).solution
        a, b = solution[:, 0]
        assert torch.allclose(design @ solution, view[i].reshape(-1, 1), atol=1e-5)
        assert 0.8 - 1e-6 <= float(a) <= 1.2 + 1e-6
        assert abs(float(b)) <= 0.3 * float(flipped[i].std()) + 1e-5
    none, flips = RandomFlipIntensity(flip_prob=0.0, scale=0.0, shift=0.0)(x)
    assert not bool(flips.any()) and torch.equal(none, x)


@pytest.mark.parametrize("kwargs, name", [({"flip_prob": 1.5}, "flip_prob"), ({"scale": 1.0}, "scale"),
                                          ({"shift": -1}, "shift"), ({"noise": -0.1}, "noise")])
def test_random_view_rejects_bad_parameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RandomFlipIntensity(**kwargs)
