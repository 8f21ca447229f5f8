"""Per-image abnormality count, boxes and annotation cost (spatialspec.label.annotation, Sec. 4.1)."""

from __future__ import annotations

import numpy as np
import pytest

from spatialspec.cost import AnnotationCostModel
from spatialspec.label import (
    abnormality_boxes,
    annotation_costs,
    count_abnormalities,
    image_annotation_costs,
)
from spatialspec.transforms import bbox_supervision


def _two_blobs() -> np.ndarray:
    mask = np.zeros((20, 24), dtype=np.uint8)
    mask[2:5, 3:9] = 1
    mask[10:18, 15:17] = 1
    return mask


def test_components_follow_the_connectivity():
    diagonal = np.zeros((6, 6))
    diagonal[1, 1] = diagonal[2, 2] = 1
    assert count_abnormalities(diagonal) == 1  # 8-connected, as the bbox level counts them
    assert count_abnormalities(diagonal, connectivity=1) == 2
    assert count_abnormalities(np.zeros((6, 6))) == 0
    assert count_abnormalities(_two_blobs()[None]) == 2  # a leading channel of 1 is accepted


def test_boxes_are_the_bbox_level_boxes():
    rng = np.random.default_rng(1)
    mask = rng.random((32, 40)) > 0.93
    boxes = abnormality_boxes(mask)
    assert len(boxes) == count_abnormalities(mask)
    filled = np.zeros_like(mask)
    for box in boxes:
        assert [e - s for s, e in zip(box["start"], box["end"])] == box["size"]
        filled[box["start"][0]:box["end"][0], box["start"][1]:box["end"][1]] = True
    assert np.array_equal(filled, bbox_supervision(mask))
    assert abnormality_boxes(_two_blobs()) == [{"start": [2, 3], "end": [5, 9], "size": [3, 6]},
                                               {"start": [10, 15], "end": [18, 17], "size": [8, 2]}]


def test_costs_of_a_two_abnormality_image():
    model = AnnotationCostModel(seg_clicks=45, click_seconds=2.0, hourly_rate=72.0)  # 4 cents a click
    facts = image_annotation_costs(_two_blobs(), model)
    assert facts["abnormalities"] == 2
    assert facts["clicks"] == {"binary": 1.0, "bbox": 4.0, "seg": 90.0}
    assert facts["cost"] == pytest.approx({"binary": 0.04, "bbox": 0.16, "seg": 3.6})
    assert annotation_costs(2, model) == facts


def test_a_negative_image_costs_one_click_at_every_level():
    facts = image_annotation_costs(np.zeros((8, 8)), levels=("binary", "bbox:all", "seg"))
    assert facts["abnormalities"] == 0
    assert facts["clicks"] == {"binary": 1.0, "bbox:all": 1.0, "seg": 1.0}


@pytest.mark.parametrize("bad", [np.zeros((2, 4, 4)), np.zeros(5)])
def test_a_mask_that_is_not_2d_is_refused(bad):
    with pytest.raises(ValueError, match="mask: expected a 2-D mask"):
        count_abnormalities(bad)
