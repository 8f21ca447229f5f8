"""Counterfactual spurious audit (beyond Saab et al. 2022): how much a model's image score moves when the spurious
feature is inserted into or removed from test images, located by spurious masks instead of subgroup labels; and where
a model looks (:mod:`.saliency`: saliency maps and their share on the spurious block, the abnormality and
elsewhere)."""

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
from .saliency import (
    SALIENCY_METHODS,
    ImageScoreNet,
    audit_saliency,
    region_shares,
    saliency_maps,
    summarize_shares,
    write_overlays,
)
from .saliency_study import SaliencyRun, run_saliency, saliency_study_runs

__all__ = ["QUANTILES", "AuditResult", "ScoreFn", "ShiftStats", "counterfactual_audit", "insert_spurious",
           "remove_spurious", "spatial_mask", "load_array", "require_spurious_masks", "bundle_score_fn",
           "load_network", "network_score_fn", "resolve_bundle", "SALIENCY_METHODS", "ImageScoreNet", "audit_saliency",
           "region_shares", "saliency_maps", "summarize_shares", "write_overlays", "SaliencyRun", "run_saliency",
           "saliency_study_runs"]
