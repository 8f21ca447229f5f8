"""Counterfactual spurious audit (beyond Saab et al. 2022): how much a model's image score moves when the spurious
feature is inserted into or removed from test images, located by spurious masks instead of subgroup labels."""

from __future__ import annotations

from .counterfactual import (
    QUANTILES,
    AuditResult,
    ScoreFn,
    ShiftStats,
    counterfactual_audit,
    insert_spurious,
    remove_spurious,
    spatial_mask,
)
from .data import load_array, require_spurious_masks
from .model import bundle_score_fn, load_network, network_score_fn, resolve_bundle

__all__ = ["QUANTILES", "AuditResult", "ScoreFn", "ShiftStats", "counterfactual_audit", "insert_spurious",
           "remove_spurious", "spatial_mask", "load_array", "require_spurious_masks", "bundle_score_fn",
           "load_network", "network_score_fn", "resolve_bundle"]
