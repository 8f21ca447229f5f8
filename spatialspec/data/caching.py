"""Caching for small in-memory data sets, such as the synthetic study's (Saab et al. 2022, Sec. 3.2.2): a
:class:`~monai.data.CacheDataset` that fills its cache in the calling thread when it has one worker, and a data
loader that collates a data set once and replays it every later epoch: a fixed evaluation set's batches as they are
(the validation split is evaluated after every training epoch, Sec. 3.3.2), a shuffled training set's batches
gathered from the collated set in each epoch's order. Both give exactly the samples and batches of MONAI's
``CacheDataset`` and ``DataLoader``; they skip work that does not change them (issue 17).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from monai.data import CacheDataset, DataLoader, MetaTensor
from monai.transforms import Compose, RandomizableTrait
from torch.utils.data import SequentialSampler

__all__ = ["SerialCacheDataset", "ReplayDataLoader"]


class SerialCacheDataset(CacheDataset):
    """MONAI's :class:`~monai.data.CacheDataset` that computes its cache in the calling thread when ``num_workers``
    is 0 or 1 (MONAI runs a thread pool of one worker then, which costs more than the transforms of a small in-memory
    sample: about half the cache's fill time for the synthetic splits). More workers fill the cache as MONAI does.
    All arguments are :class:`~monai.data.CacheDataset`'s.

    Example (bundle config)::

        dataset: {_target_: spatialspec.data.SerialCacheDataset, data: "@train#data",
                  transform: "@train#preprocessing", cache_rate: 1.0, num_workers: 0, progress: false}
    """

    def _fill_cache(self, indices: Any = None) -> list:
        if self.num_workers is None or self.num_workers > 1 or self.progress:
            return super()._fill_cache(indices)
        if self.cache_num <= 0:
            return []
        return [self._load_cache_item(i) for i in (range(self.cache_num) if indices is None else indices)]


class ReplayDataLoader(DataLoader):
    """MONAI's :class:`~monai.data.DataLoader` over a data set whose samples do not change between epochs: it
    collates them once and replays them on every later pass, instead of fetching and collating the same samples
    again each epoch.

    The samples do not change when the data set's ``transform`` applies no random transform (a data set config that
    ends its cached part at ``RandIdentity`` to cast compact cached samples on every read, as ``siim.yaml`` and
    ``isic.yaml`` do, counts as random). Then, with a sequential sampler (a fixed evaluation set), the batches of the
    first pass are kept and replayed; with any other sampler (``shuffle: true``), the whole data set is collated on
    the first pass and each epoch's batches are gathered from it in the order the sampler draws, which is the order,
    and the random numbers, of a ``DataLoader`` pass (for a MONAI ``CacheDataset`` only, collated again when its
    ``set_data`` replaces the cache; wrappers whose samples change between stages, such as JTT's upsampled set, are
    loaded as by a ``DataLoader``). A data set whose collated samples are not a dict of tensors and
    lists (or hold MONAI ``MetaTensor`` metadata), and batches of more than ``max_bytes`` of tensors, are loaded by
    the plain ``DataLoader``. A replayed batch is a shallow copy of its dict or list and a gathered one a copy of its
    samples (a consumer that changes a batch changes no later pass), and each pass draws the worker seed a
    ``DataLoader`` pass draws, so the global random state advances alike (the next training epoch's shuffle is the
    same).

    Args:
        dataset: the data set.
        max_bytes: the most tensor bytes kept for replay (default 1 GiB).
        kwargs: :class:`~monai.data.DataLoader`'s other arguments.

    Example (bundle config)::

        dataloader: {_target_: spatialspec.data.ReplayDataLoader, dataset: "@validate#dataset",
                     batch_size: "@val_batch_size", shuffle: false, num_workers: 0}
        dataloader: {_target_: spatialspec.data.ReplayDataLoader, dataset: "@train#dataset",
                     batch_size: "@batch_size", shuffle: true, num_workers: 0}
    """

    def __init__(self, dataset: Any, max_bytes: int = 1 << 30, **kwargs: Any) -> None:
        super().__init__(dataset, **kwargs)
        self.max_bytes = int(max_bytes)
        transform = getattr(dataset, "transform", None)
        # a Compose is itself Randomizable (it seeds its members): look at the transforms it applies
        steps = transform.flatten().transforms if isinstance(transform, Compose) else [transform]
        random = any(isinstance(t, RandomizableTrait) and not isinstance(t, Compose) for t in steps)
        sequential = isinstance(self.sampler, SequentialSampler)
        #: whether the loader replays its first pass's batches (see the class docstring)
        self.replays = sequential and not random
        #: whether the loader gathers each epoch's batches from the collated data set (see the class docstring)
        self.gathers = (not sequential and not random and self.batch_sampler is not None
                        and isinstance(dataset, CacheDataset))
        self._batches: list | None = None
        self._collated: dict | None = None
        self._collated_from: tuple | None = None

    def __iter__(self) -> Iterator[Any]:
        if self.gathers and self._collated_from != self._cache_identity():
            # first pass, or MONAI's set_data() gave the data set a new cache: collate (again)
            self._collated, self._collated_from = self._collate_all(), self._cache_identity()
            self.gathers = self._collated is not None
        if not (self.replays or self.gathers):
            return super().__iter__()
        if self.replays and self._batches is None:
            return self._first_pass(super().__iter__())
        if not (self.persistent_workers and self.num_workers > 0):
            # the seed a DataLoader's iterator draws for its workers: the global RNG advances as with a DataLoader,
            # so the rest of a run (the next epoch's shuffle) draws the same numbers
            torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        if self.gathers:
            return self._gather(iter(self.batch_sampler))
        return (_shallow_copy(batch) for batch in self._batches)

    def _cache_identity(self) -> tuple:
        return id(getattr(self.dataset, "_cache", None)), len(self.dataset)

    def _collate_all(self) -> dict | None:
        """The whole data set collated as one batch, if it is a dict of tensors (not ``MetaTensor``) and lists of one
        entry per sample within ``max_bytes``; else ``None``. Draws no random number (no transform is random)."""
        size = len(self.dataset)
        if size == 0:
            return None
        collated = self.collate_fn([self.dataset[i] for i in range(size)])
        if not isinstance(collated, dict) or _tensor_bytes(collated) > self.max_bytes:
            return None
        for value in collated.values():
            if isinstance(value, MetaTensor) or not isinstance(value, torch.Tensor | list) or len(value) != size:
                return None
        return collated

    def _gather(self, indices: Iterator[list[int]]) -> Iterator[dict]:
        """The batches of the sampler's index lists, gathered from the collated data set (each a copy)."""
        for batch in indices:
            rows = torch.as_tensor(batch, dtype=torch.long)
            yield {key: value.index_select(0, rows) if isinstance(value, torch.Tensor) else [value[i] for i in batch]
                   for key, value in self._collated.items()}

    def _first_pass(self, iterator: Iterator[Any]) -> Iterator[Any]:
        """Fetch and collate as a ``DataLoader`` does, keeping the batches (if within ``max_bytes``) once the last
        one has been collated (an engine that knows its epoch length never asks for the end of the pass)."""
        expected = len(self)
        batches: list | None = []
        size = 0
        for batch in iterator:
            if batches is not None:
                size += _tensor_bytes(batch)
                if size > self.max_bytes:
                    batches = None
                else:
                    batches.append(batch)
                    if len(batches) == expected:
                        self._batches = batches
                    batch = _shallow_copy(batch)
            yield batch


def _shallow_copy(batch: Any) -> Any:
    if isinstance(batch, dict):
        return dict(batch)
    if isinstance(batch, list):
        return list(batch)
    return batch


def _tensor_bytes(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.element_size() * batch.nelement()
    if isinstance(batch, dict):
        return sum(_tensor_bytes(v) for v in batch.values())
    if isinstance(batch, (list, tuple)):
        return sum(_tensor_bytes(v) for v in batch)
    return 0
