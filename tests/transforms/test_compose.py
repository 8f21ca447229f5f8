"""flat_compose, and the cache boundary the bundles wire with it: CacheDataset caches the deterministic prefix of one
flat Compose, up to MONAI's RandIdentity, and CastToTyped after it casts the compact cache on every read."""

from __future__ import annotations

import pytest
import torch
from monai.data import CacheDataset
from monai.transforms import CastToTyped, Compose, EnsureTyped, Lambdad, RandIdentity

from spatialspec.transforms import flat_compose


def _add(key: str, value: float) -> Lambdad:
    return Lambdad(keys=key, func=lambda x: x + value)


def test_flattens_composes_and_lists_in_order():
    a, b, c, d = _add("x", 1), _add("x", 10), _add("x", 100), _add("x", 1000)
    composed = flat_compose([Compose([a, Compose([b])]), [c], [], d])
    assert type(composed) is Compose and composed.transforms == (a, b, c, d)
    assert composed({"x": 0})["x"] == 1111


def test_refuses_what_is_not_a_transform():
    with pytest.raises(TypeError, match=r"transforms\[1\] holds int"):
        flat_compose([_add("x", 1), [2]])


def test_cache_holds_float16_and_reads_float32():
    data = [{"image": torch.full((1, 2, 2), 0.1 * i)} for i in range(3)]
    caching = [EnsureTyped(keys="image", dtype=torch.float16, track_meta=False)]
    # the boundary (replaces the configs' `$lambda d: {**d, 'image': d['image'].float()}`)
    boundary = [RandIdentity(), CastToTyped(keys="image", dtype=torch.float32)]
    dataset = CacheDataset(data, flat_compose([Compose(caching), boundary]), progress=False)
    assert all(item["image"].dtype == torch.float16 for item in dataset._cache)  # the compact cache
    for i, item in enumerate(dataset):
        assert item["image"].dtype == torch.float32
        assert torch.equal(item["image"], torch.full((1, 2, 2), 0.1 * i).half().float())
    # a nested Compose would end the cached part before its first transform
    nested = CacheDataset(data, Compose([Compose(caching), *boundary]), progress=False)
    assert nested._cache[0]["image"].dtype == torch.float32
