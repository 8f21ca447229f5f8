"""The cost-robustness methods of Saab et al. 2022, Sec. 4.2: Seg-SSL (semi-supervised, image-level similarity loss,
after Hooper et al. 2022) and Seg-SPL (supervised pixel-level similarity loss), and their shared embedding layer."""

from __future__ import annotations

from .augment import RandomFlipIntensity, apply_flips
from .features import FeatureMapHook, default_feature_layer
from .objectives import ImageSimilarityLoss, PixelSimilarityObjective, SemiSupervisedObjective, labels_at
from .pseudo_labels import (PseudoLabelledDataset, PseudoLabelWriter, load_pseudo_labels, predict_masks,
                            save_pseudo_labels)
from .subsets import flagged_subset
from .transforms import HideUnlabelledd

__all__ = ["RandomFlipIntensity", "apply_flips", "FeatureMapHook", "default_feature_layer", "ImageSimilarityLoss",
           "PixelSimilarityObjective", "SemiSupervisedObjective", "labels_at", "PseudoLabelledDataset",
           "PseudoLabelWriter", "load_pseudo_labels", "predict_masks", "save_pseudo_labels", "HideUnlabelledd",
           "flagged_subset"]
