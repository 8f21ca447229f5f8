"""Data sets of spatialspec: the synthetic data model (Sec. 3.2.2), MONAI decathlon-style datalists, the paper's real
data sets (SIIM-ACR pneumothorax with chest tubes, ISIC 2018 with the trap sets; Sec. 5, App. A.1) and the nested,
stratified subsets of the label-budget sweep (Sec. 5.2), and the check of a datalist before anything is trained
(:func:`validate_datalist`).

The real-data readers are modules of their own: :mod:`spatialspec.data.siim`, :mod:`spatialspec.data.isic`,
:mod:`spatialspec.data.safe_pickle`, :mod:`spatialspec.data.dicom`. The bundles' data set and loader for small
in-memory data (:class:`SerialCacheDataset`, :class:`ReplayDataLoader`, :mod:`spatialspec.data.caching`) import
torch and MONAI on first access, so that the commands that read no images stay light.
"""

from __future__ import annotations

from typing import Any

from . import isic, safe_pickle, siim
from .datalist import load_split, write_synthetic_datalist
from .folder import folder_datalist
from .subsample import stratified_order, stratified_subset
from .synthetic import SPLITS, SyntheticParams, generate_split, parse_synthetic_overrides
from .validate import DatalistError, DatalistReport, validate_datalist

__all__ = ["SPLITS", "SyntheticParams", "generate_split", "parse_synthetic_overrides", "load_split",
           "write_synthetic_datalist", "folder_datalist", "validate_datalist", "DatalistReport", "DatalistError",
           "stratified_order", "stratified_subset", "siim", "isic", "safe_pickle", "SerialCacheDataset",
           "ReplayDataLoader"]

_CACHING = ("SerialCacheDataset", "ReplayDataLoader")


def __getattr__(name: str) -> Any:
    """The classes of :mod:`.caching` on first access (PEP 562): importing them imports torch and MONAI."""
    if name in _CACHING:
        from . import caching

        return getattr(caching, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
