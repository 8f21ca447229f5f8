"""The labelled and unlabelled training sets of Seg-SSL (Saab et al. 2022, Sec. 4.2.1), as views of one cached
dataset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.utils.data import Subset

__all__ = ["flagged_subset"]


def flagged_subset(dataset: Any, data: Sequence[dict[str, Any]], labelled: bool = True,
                   flag_key: str = "labelled") -> Subset:
    """The items of ``dataset`` (built from ``data``, in the same order) whose ``flag_key`` in ``data`` is 1
    (``labelled=True``) or 0 (``labelled=False``); see :func:`spatialspec.data.subsample.flag_location_labels`.

    Raises:
        ValueError: naming ``data`` when its length differs from the dataset's, or the entry lacking ``flag_key``.
    """
    if len(data) != len(dataset):
        raise ValueError(f"data has {len(data)} entries but the dataset {len(dataset)}: build the dataset from data")
    indices = []
    for i, entry in enumerate(data):
        if flag_key not in entry:
            raise ValueError(f"data[{i}] has no {flag_key!r} flag (flag it with flag_location_labels)")
        if bool(int(entry[flag_key])) == labelled:
            indices.append(i)
    return Subset(dataset, indices)
