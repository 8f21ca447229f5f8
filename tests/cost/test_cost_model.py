"""AnnotationCostModel against the arithmetic of Sec. 4.1 worked by hand."""

from __future__ import annotations

import pytest

from spatialspec.cost import AnnotationCostModel


def test_paper_worked_example():
    # Sec. 4.1: m = 10,000 positives, n = 45, c = 1 s, $100/h, a = 1.
    # binary: 10,000 clicks = 10,000 s; boxes 2 * 10,000 s; masks 45 * 10,000 s.
    # extra for boxes: 10,000 s = 2.777.. h -> $277.78 ("$280"); masks 440,000 s = 122.2.. h -> $12,222.22 ("$12,200")
    model = AnnotationCostModel(seg_clicks=45, click_seconds=1, hourly_rate=100, abnormalities_per_image=1)
    binary, bbox, seg = model.estimate_levels(["binary", "bbox", "seg"], positives=10_000)
    assert (binary.clicks, bbox.clicks, seg.clicks) == (10_000, 20_000, 450_000)
    assert binary.hours == pytest.approx(10_000 / 3600)
    assert seg.hours == pytest.approx(125.0)
    assert binary.extra_cost == 0
    assert bbox.extra_cost == pytest.approx(10_000 / 3600 * 100)
    assert seg.extra_cost == pytest.approx(440_000 / 3600 * 100)
    # the paper's precision: $280 to the nearest ten, $12,200 to the nearest hundred
    assert round(bbox.extra_cost, -1) == 280
    assert round(seg.extra_cost, -2) == 12_200
    assert round(bbox.extra_cost) == 278 and round(seg.extra_cost) == 12_222


def test_general_formulas_with_several_abnormalities():
    # m = 300, a = 2.5, n = 30, c = 2 s, $60/h: binary m c = 600 s; boxes 2 m c a = 3,000 s; masks n m c a = 45,000 s
    model = AnnotationCostModel(seg_clicks=30, click_seconds=2, hourly_rate=60, abnormalities_per_image=2.5)
    binary, bbox, seg = model.estimate_levels(positives=300)
    assert binary.hours == pytest.approx(600 / 3600)
    assert bbox.hours == pytest.approx(3_000 / 3600)
    assert seg.hours == pytest.approx(45_000 / 3600)
    assert bbox.cost == pytest.approx(3_000 / 3600 * 60)
    assert bbox.extra_hours == pytest.approx(2_400 / 3600)
    assert seg.extra_cost == pytest.approx(44_400 / 3600 * 60)


def test_negatives_cost_one_click_at_every_level():
    model = AnnotationCostModel()
    with_negatives = model.estimate("seg", positives=10, negatives=90)
    # 10 * 45 mask clicks + 90 binary clicks; binary would be 100 clicks
    assert with_negatives.clicks == 450 + 90
    assert with_negatives.extra_hours == pytest.approx((540 - 100) / 3600)
    assert with_negatives.extra_cost == pytest.approx(model.estimate("seg", positives=10).extra_cost)


def test_other_level_names():
    model = AnnotationCostModel(seg_clicks=40, abnormalities_per_image=3, patch_cells_per_abnormality=2)
    assert model.clicks_per_positive_image("bbox") == 6  # 2 per abnormality
    assert model.clicks_per_positive_image("bbox:all") == 2  # one box around all of them
    assert model.clicks_per_positive_image("seg") == 120
    assert model.clicks_per_positive_image("dilate:4") == 120  # computed from the mask
    assert model.clicks_per_positive_image("dilate:1") == 1  # same labels as binary
    assert model.clicks_per_positive_image("dilate:0.5") == 1
    assert model.clicks_per_positive_image("patch:1") == 1
    assert model.clicks_per_positive_image("patch:4") == 6  # 3 abnormalities x 2 cells
    assert model.clicks_per_positive_image("patch:2") == 4  # capped at the 2 x 2 cells
    with pytest.raises(ValueError, match="patch_cells_per_abnormality"):
        AnnotationCostModel().clicks_per_positive_image("patch:4")
    with pytest.raises(ValueError, match="unknown level"):
        model.estimate("box", positives=1)


def test_per_image_costs():
    model = AnnotationCostModel(seg_clicks=45, click_seconds=2, hourly_rate=90)
    price = 2 / 3600 * 90  # dollars per click
    assert model.image_costs(0) == pytest.approx({"binary": price, "bbox": price, "seg": price})
    assert model.image_costs(3) == pytest.approx({"binary": price, "bbox": 6 * price, "seg": 135 * price})
    assert model.image_clicks("patch:4", 2, positive_cells=5) == 5
    assert model.image_clicks("patch:2", 2, positive_cells=9) == 4
    assert model.image_cost("bbox:all", 3) == pytest.approx(2 * price)


@pytest.mark.parametrize("field", ["seg_clicks", "click_seconds", "hourly_rate", "abnormalities_per_image",
                                   "patch_cells_per_abnormality"])
@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "3"])
def test_invalid_parameters_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        AnnotationCostModel(**{field: value})


def test_invalid_counts_name_the_parameter():
    model = AnnotationCostModel()
    with pytest.raises(ValueError, match="positives"):
        model.estimate("seg", positives=-1)
    with pytest.raises(ValueError, match="positives"):
        model.estimate("seg", positives=2.5)
    with pytest.raises(ValueError, match="negatives"):
        model.estimate("seg", positives=1, negatives=-3)
    with pytest.raises(ValueError, match="abnormalities"):
        model.image_cost("seg", -1)
    with pytest.raises(ValueError, match="positive_cells"):
        model.image_clicks("patch:4", 1, positive_cells=-2)
