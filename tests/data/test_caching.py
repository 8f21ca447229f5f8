"""SerialCacheDataset and ReplayDataLoader (spatialspec.data.caching, issue 17): the samples and batches of MONAI's
CacheDataset and DataLoader, without the thread pool and the per-epoch collation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import CacheDataset, DataLoader
from monai.transforms import CastToTyped, Compose, EnsureTyped, Lambdad, RandFlipd, RandIdentity

from spatialspec.data import ReplayDataLoader, SerialCacheDataset, SyntheticParams, generate_split
from spatialspec.transforms import LoadImageOrArrayd, SpecificityLabeld

DATA = generate_split(SyntheticParams(m=7, n=16, a=4, b=4, n_val=11, n_test=5), "validation", 2)
PIPELINE = Compose([LoadImageOrArrayd(keys=["image", "label"], track_meta=False),
                    SpecificityLabeld(keys="label", level="bbox"), EnsureTyped(keys=["image", "label"])])
# the bundles' training pipeline on in-memory data: plain tensors, no MetaTensor
PLAIN = Compose([LoadImageOrArrayd(keys=["image", "label"], track_meta=False),
                 SpecificityLabeld(keys="label", level="bbox"), EnsureTyped(keys=["image", "label"], track_meta=False)])


def _same(a, b) -> None:
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _same(a[key], b[key])
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    elif isinstance(a, list):
        assert len(a) == len(b) and all(_same(x, y) is None for x, y in zip(a, b))
    else:
        assert a == b


def test_serial_cache_is_monais_cache_without_a_thread_pool(monkeypatch):
    monai_cache = CacheDataset(DATA, PIPELINE, cache_rate=1.0, num_workers=0, progress=False)
    import multiprocessing.pool

    def no_pool(*args, **kwargs):
        raise AssertionError("a thread pool was started")

    monkeypatch.setattr("monai.data.dataset.ThreadPool", no_pool)
    serial = SerialCacheDataset(DATA, PIPELINE, cache_rate=1.0, num_workers=0, progress=False)
    assert len(serial) == len(monai_cache) == len(DATA)
    for i in range(len(DATA)):
        _same(serial[i], monai_cache[i])
    partial = SerialCacheDataset(DATA, PIPELINE, cache_rate=0.5, num_workers=1, progress=False)
    assert partial.cache_num == 5 and all(item is not None for item in partial._cache)
    monkeypatch.setattr("monai.data.dataset.ThreadPool", multiprocessing.pool.ThreadPool)
    pooled = SerialCacheDataset(DATA, PIPELINE, cache_rate=1.0, num_workers=2, progress=False)  # MONAI's way
    _same(pooled[3], monai_cache[3])


class _Counting(CacheDataset):
    fetched = 0

    def __getitem__(self, index):
        type(self).fetched += 1
        return super().__getitem__(index)


def test_replay_loader_collates_once_and_replays_the_same_batches():
    dataset = _Counting(DATA, PIPELINE, cache_rate=1.0, num_workers=0, progress=False)
    reference_loader = DataLoader(dataset, batch_size=4, shuffle=False)
    reference = list(reference_loader)
    _Counting.fetched = 0
    loader = ReplayDataLoader(dataset, batch_size=4, shuffle=False, num_workers=0)
    assert loader.replays and len(loader) == 3 and loader.collate_fn is reference_loader.collate_fn
    for _ in range(3):
        batches = list(loader)
        assert len(batches) == len(reference)
        for batch, expected in zip(batches, reference):
            _same(batch, expected)
        batches[0]["added"] = "by a consumer"  # a shallow copy: no later epoch sees it
    assert _Counting.fetched == len(DATA)  # the samples were fetched in the first pass only


@pytest.mark.parametrize("generator", [None, 7])
def test_replay_advances_the_random_state_as_a_data_loader(generator):
    """Each pass of a DataLoader draws a worker seed from the global RNG (or its generator): so does a replay, and a
    run's later draws (the next epoch's shuffle) stay the same."""
    def draws(cls):
        torch.manual_seed(0)
        gen = None if generator is None else torch.Generator().manual_seed(generator)
        loader = cls(CacheDataset(DATA, PIPELINE, progress=False), batch_size=4, generator=gen)
        out = []
        for _ in range(3):
            list(loader)
            out.append(torch.randint(0, 1 << 30, (2,)).tolist())
        return out, (None if gen is None else gen.get_state())

    (plain, plain_gen), (replay, replay_gen) = draws(DataLoader), draws(ReplayDataLoader)
    assert plain == replay
    assert plain_gen is None or torch.equal(plain_gen, replay_gen)


def test_replay_loader_keeps_nothing_beyond_max_bytes():
    dataset = _Counting(DATA, PIPELINE, cache_rate=1.0, num_workers=0, progress=False)
    _Counting.fetched = 0
    loader = ReplayDataLoader(dataset, max_bytes=1000, batch_size=4, shuffle=False)
    for _ in range(2):
        assert len(list(loader)) == 3
    assert _Counting.fetched == 2 * len(DATA)


def test_an_unfinished_first_pass_keeps_nothing():
    loader = ReplayDataLoader(CacheDataset(DATA, PIPELINE, progress=False), batch_size=4)
    next(iter(loader))
    assert loader._batches is None
    batches = iter(loader)
    for _ in range(3):  # an engine that knows its epoch length stops after the last batch, before StopIteration
        next(batches)
    assert loader._batches is not None


def test_an_evaluator_replays_the_validation_batch():
    """MONAI's evaluator runs one epoch of len(loader) iterations per call: the second call fetches nothing."""
    from monai.engines import SupervisedEvaluator

    _Counting.fetched = 0
    loader = ReplayDataLoader(_Counting(DATA, PIPELINE, progress=False), batch_size=20)
    evaluator = SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=loader,
                                    network=torch.nn.Conv2d(1, 2, 1), decollate=False)
    for _ in range(3):
        evaluator.run()
    assert _Counting.fetched == len(DATA)


def test_replay_loader_does_not_replay_what_changes_between_epochs():
    """A shuffled order or a random transform (also a RandIdentity cache boundary): a plain DataLoader."""
    dataset = _Counting(DATA, Compose([PIPELINE, RandIdentity(), CastToTyped(keys="image", dtype=torch.float64)]),
                        progress=False)
    boundary = ReplayDataLoader(dataset, batch_size=4)
    _Counting.fetched = 0
    for _ in range(2):
        batches = list(boundary)
        assert len(batches) == 3 and batches[0]["image"].dtype == torch.float64
    assert not boundary.replays and _Counting.fetched == 2 * len(DATA)
    assert not ReplayDataLoader(DATA, batch_size=4, shuffle=True).replays
    assert not ReplayDataLoader(DATA, batch_size=4, shuffle=True).gathers  # not a CacheDataset: its samples may change
    assert not ReplayDataLoader(DATA, batch_size=4, sampler=torch.utils.data.RandomSampler(DATA)).replays
    random = Compose([PIPELINE, RandFlipd(keys="image", prob=0.5)])
    assert not ReplayDataLoader(CacheDataset(DATA, random, progress=False), batch_size=4).replays
    nested = Compose([PIPELINE, Lambdad(keys="y", func=int)])  # a Compose in a Compose is not random itself
    assert ReplayDataLoader(CacheDataset(DATA, nested, progress=False)).replays


def _shuffled_epochs(cls, dataset, epochs: int = 3, **kwargs) -> tuple[list, list]:
    """Each epoch's batches and a draw of the global RNG after it, from a fixed seed."""
    torch.manual_seed(5)
    loader = cls(dataset, batch_size=4, **kwargs)
    batches, draws = [], []
    for _ in range(epochs):
        batches.append(list(loader))
        draws.append(torch.randint(0, 1 << 30, (2,)).tolist())
    return batches, draws


@pytest.mark.parametrize("sampler", ["shuffle", "replacement", "distributed"])
def test_shuffled_batches_are_gathered_from_one_collation(sampler):
    """shuffle=True (and any sampler that is not sequential): the whole set is collated once and each epoch's batches
    are gathered in the sampler's order: the batches and the global random numbers of a DataLoader."""
    dataset = _Counting(DATA, PLAIN, cache_rate=1.0, num_workers=0, progress=False)

    def kwargs():
        if sampler == "shuffle":
            return {"shuffle": True}
        if sampler == "replacement":
            return {"sampler": torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=9)}
        return {"sampler": torch.utils.data.DistributedSampler(dataset, num_replicas=2, rank=1, seed=3)}

    reference, reference_draws = _shuffled_epochs(DataLoader, dataset, **kwargs())
    _Counting.fetched = 0
    gathered, gathered_draws = _shuffled_epochs(ReplayDataLoader, dataset, **kwargs())
    assert _Counting.fetched == len(DATA)  # one collation, then gathering
    assert gathered_draws == reference_draws
    assert [len(epoch) for epoch in gathered] == [len(epoch) for epoch in reference]
    for epoch, expected in zip(gathered, reference):
        for batch, want in zip(epoch, expected):
            _same(batch, want)
    if sampler == "shuffle":  # the epochs differ: the order really is the sampler's
        assert [b["id"] for b in reference[0]] != [b["id"] for b in reference[1]]
    gathered[0][0]["image"].fill_(-1.0)  # a gathered batch is a copy: later epochs are unchanged
    again, _ = _shuffled_epochs(ReplayDataLoader, dataset, epochs=1, **kwargs())
    _same(again[0][0], reference[0][0])


def test_gathering_follows_a_replaced_cache_and_falls_back_where_it_cannot():
    dataset = CacheDataset(DATA, PLAIN, progress=False)
    loader = ReplayDataLoader(dataset, batch_size=4, shuffle=True)
    assert loader.gathers
    assert len(list(loader)) == 3
    dataset.set_data(DATA[:6])  # MONAI's set_data: a new cache, collated again
    batches = list(loader)
    assert loader.gathers and sum(len(b["id"]) for b in batches) == 6
    assert {i for b in batches for i in b["id"]} == {entry["id"] for entry in DATA[:6]}
    random = Compose([PLAIN, RandFlipd(keys="image", prob=0.5)])
    assert not ReplayDataLoader(CacheDataset(DATA, random, progress=False), batch_size=4, shuffle=True).gathers
    tracked = Compose([LoadImageOrArrayd(keys=["image", "label"], track_meta=True)])  # MetaTensor: a DataLoader
    meta = ReplayDataLoader(CacheDataset(DATA, tracked, progress=False), batch_size=4, shuffle=True)
    assert len(list(meta)) == 3 and not meta.gathers
    tight = ReplayDataLoader(CacheDataset(DATA, PLAIN, progress=False), max_bytes=1000, batch_size=4, shuffle=True)
    assert len(list(tight)) == 3 and not tight.gathers
