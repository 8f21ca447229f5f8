"""Data sets of spatialspec: the synthetic data model (Sec. 3.2.2) and MONAI decathlon-style datalists."""

from __future__ import annotations

from .datalist import load_split, write_synthetic_datalist
from .synthetic import SPLITS, SyntheticParams, generate_split, parse_synthetic_overrides

__all__ = ["SPLITS", "SyntheticParams", "generate_split", "parse_synthetic_overrides", "load_split",
           "write_synthetic_datalist"]
