"""Robust-training baselines on binary labels (Saab et al. 2022, Table 1): building blocks of JTT and GEORGE."""

from __future__ import annotations

from .jtt import error_set, upsample, upsampling_factor

__all__ = ["error_set", "upsample", "upsampling_factor"]
