"""Seg-SSL, the semi-supervised cost-robustness method of Saab et al. 2022 (Sec. 4.2.1, after Hooper et al. 2022):
an image-level similarity loss on the unlabelled images in step 1, pseudo-labels in step 2.

The method package holds what only Seg-SSL uses: its objective (:class:`SemiSupervisedObjective`), its random views
(:class:`RandomFlipIntensity`, :func:`apply_flips`), its stage writer and data set (:class:`PseudoLabelWriter`,
:class:`PseudoLabelledDataset` and the pseudo-label file), the labelled/unlabelled subsets (:func:`flagged_subset`)
and the transform that hides the unlabelled images' labels (:class:`HideUnlabelledd`). The reusable pieces it wires
live in the layer packages: :class:`spatialspec.losses.ImageSimilarityLoss` and
:class:`spatialspec.networks.FeatureMapHook` (shared with Seg-SPL, :mod:`spatialspec.spl`). The names that moved out
of this package resolve here, with a ``DeprecationWarning``, until the next release.
"""

from __future__ import annotations

from spatialspec._deprecated import moved_names

from .augment import RandomFlipIntensity, apply_flips
from .objectives import SemiSupervisedObjective
from .pseudo_labels import (
    PseudoLabelledDataset,
    PseudoLabelWriter,
    load_pseudo_labels,
    predict_masks,
    save_pseudo_labels,
)
from .subsets import flagged_subset
from .transforms import HideUnlabelledd

__all__ = ["RandomFlipIntensity", "apply_flips", "SemiSupervisedObjective", "PseudoLabelledDataset",
           "PseudoLabelWriter", "load_pseudo_labels", "predict_masks", "save_pseudo_labels", "HideUnlabelledd",
           "flagged_subset"]

__getattr__ = moved_names(__name__, {"FeatureMapHook": "spatialspec.networks.FeatureMapHook",
                                     "default_feature_layer": "spatialspec.networks.default_feature_layer",
                                     "ImageSimilarityLoss": "spatialspec.losses.ImageSimilarityLoss",
                                     "PixelSimilarityObjective": "spatialspec.spl.PixelSimilarityObjective",
                                     "labels_at": "spatialspec.spl.labels_at"})
