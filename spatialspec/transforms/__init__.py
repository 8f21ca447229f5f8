"""MONAI transforms of spatialspec: specificity supervision (Sec. 3.1) and image-level scores."""

from __future__ import annotations

from .class_label import LabelByClass, LabelByClassD, LabelByClassd, LabelByClassDict
from .compose import flat_compose
from .inputs import LoadInputImage, LoadInputImageD, LoadInputImaged, LoadInputImageDict, training_image_size
from .io import LoadImageOrArrayD, LoadImageOrArrayd, LoadImageOrArrayDict
from .locations import SaveLocationD, SaveLocationd, SaveLocationDict, location_boxes
from .scores import (
    SCORE_METHODS,
    ImageScore,
    ImageScoreD,
    ImageScored,
    ImageScoreDict,
    batch_image_score,
    image_score,
    parse_score,
)
from .specificity import *  # noqa: F401,F403
from .specificity import __all__ as _specificity_all

__all__ = ["LoadImageOrArrayd", "LoadImageOrArrayD", "LoadImageOrArrayDict", "SCORE_METHODS", "ImageScore",
           "ImageScored", "ImageScoreD", "ImageScoreDict", "image_score", "batch_image_score", "parse_score",
           "LabelByClass", "LabelByClassd", "LabelByClassD", "LabelByClassDict", "flat_compose", "LoadInputImage",
           "LoadInputImaged", "LoadInputImageD", "LoadInputImageDict", "training_image_size", "SaveLocationd",
           "SaveLocationD", "SaveLocationDict", "location_boxes", *_specificity_all]
