"""Seg-SPL, the supervised pixel-level similarity method of Saab et al. 2022 (Sec. 4.2.2): segmentation trained with
cross-entropy plus a loss that pulls together the embeddings of the batch's positively-labelled pixels.

The method package holds what only Seg-SPL uses: its trainer objective :class:`PixelSimilarityObjective` and
:func:`labels_at` (:mod:`.objective`). The reusable pieces it wires live in the layer packages:
:class:`spatialspec.losses.PixelSimilarityLoss` and :class:`spatialspec.networks.FeatureMapHook` (shared with
Seg-SSL). The ``segmentation`` bundle's ``spl.yaml`` overlay trains it.
"""

from __future__ import annotations

from .objective import PixelSimilarityObjective, labels_at

__all__ = ["PixelSimilarityObjective", "labels_at"]
