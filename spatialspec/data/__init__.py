"""Data sets of spatialspec: the synthetic data model (Sec. 3.2.2), MONAI decathlon-style datalists, the paper's real
data sets (SIIM-ACR pneumothorax with chest tubes, ISIC 2018 with the trap sets; Sec. 5, App. A.1) and the nested,
stratified subsets of the label-budget sweep (Sec. 5.2), and the check of a datalist before anything is trained
(:func:`validate_datalist`).

The real-data readers are modules of their own: :mod:`spatialspec.data.siim`, :mod:`spatialspec.data.isic`,
:mod:`spatialspec.data.safe_pickle`, :mod:`spatialspec.data.dicom`.
"""

from __future__ import annotations

from . import isic, safe_pickle, siim
from .datalist import load_split, write_synthetic_datalist
from .subsample import stratified_order, stratified_subset
from .synthetic import SPLITS, SyntheticParams, generate_split, parse_synthetic_overrides
from .validate import DatalistError, DatalistReport, validate_datalist

__all__ = ["SPLITS", "SyntheticParams", "generate_split", "parse_synthetic_overrides", "load_split",
           "write_synthetic_datalist", "validate_datalist", "DatalistReport", "DatalistError", "stratified_order",
           "stratified_subset", "siim", "isic", "safe_pickle"]
