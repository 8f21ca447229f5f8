"""The budget planner (beyond the paper; Sec. 4.1 costs, Sec. 5.2 curves) on made-up curves with hand-worked answers."""

from __future__ import annotations

import json
import math

import pytest

from spatialspec.cost import AnnotationCostModel
from spatialspec.cost.planner import BudgetPlanner, LabelCurve, curves_from_records, load_results, option_name

# the paper's defaults: a mask costs 44 extra clicks = 44 s = $1.2222, a box 1 extra click = $0.027778
MASK = 44 / 3600 * 100
BOX = 1 / 3600 * 100


def _curve(option, level, budgets, robust, overall=None):
    overall = overall or [math.nan] * len(budgets)
    return LabelCurve(option, level, tuple(budgets), tuple(robust), tuple([0.01] * len(budgets)), tuple(overall),
                      tuple([3] * len(budgets)))


def _curves():
    return [_curve("seg", "seg", [10, 100], [0.60, 0.90]),
            _curve("bbox", "bbox", [10, 100], [0.55, 0.70]),
            _curve("binary", "binary", [1], [0.20])]


def test_cost_is_the_paper_extra_cost():
    planner = BudgetPlanner(_curves())
    assert planner.cost("seg", 100) == pytest.approx(100 * MASK)
    assert planner.cost("bbox", 100) == pytest.approx(100 * BOX)
    assert BudgetPlanner(_curves(), positive_fraction=0.5).cost("seg", 100) == pytest.approx(50 * MASK)
    # the paper's example: 10,000 masks add $12,222.22
    assert planner.cost("seg", 10_000) == pytest.approx(12_222.22, abs=0.01)
    assert planner.affordable("seg", 50.0) == 40  # 40 * 1.2222 = 48.9 <= 50 < 41 * 1.2222 = 50.1


def test_rich_budget_buys_the_best_curve_at_its_largest_measured_budget():
    plan = BudgetPlanner(_curves()).plan(1_000.0)
    assert plan.best.option == "seg" and plan.best.location_labels == 100
    assert plan.best.robust_auroc == pytest.approx(0.90)
    assert plan.best.cost == pytest.approx(100 * MASK)
    assert [o.option for o in plan.options] == ["seg", "bbox", "binary"]


def test_interpolation_is_linear_in_log_n():
    plan = BudgetPlanner(_curves()).plan(50.0)
    assert plan.best.option == "seg" and plan.best.location_labels == 40
    # log-linear between (10, 0.6) and (100, 0.9): 0.6 + 0.3 * log10(4)
    assert plan.best.robust_auroc == pytest.approx(0.6 + 0.3 * math.log10(4))
    bbox = next(o for o in plan.options if o.option == "bbox")
    assert bbox.location_labels == 100  # boxes are cheap: the whole measured range fits


def test_small_budget_prefers_cheap_boxes_and_nothing_below_the_measured_range():
    # $5 buys 4 masks (below seg's smallest measured budget 10) but 180 boxes (capped at the measured 100)
    plan = BudgetPlanner(_curves()).plan(5.0)
    assert plan.best.option == "bbox" and plan.best.location_labels == 100
    seg = next(o for o in plan.options if o.option == "seg")
    assert not seg.feasible and "below the measured range" in seg.note and math.isnan(seg.robust_auroc)
    # nothing fits but image labels
    plan = BudgetPlanner(_curves()).plan(0.1)
    assert plan.best.option == "binary" and plan.best.location_labels is None and plan.best.cost == 0.0


def test_a_curve_that_peaks_early_buys_the_cheaper_budget():
    curves = [_curve("seg", "seg", [10, 20, 40], [0.7, 0.8, 0.8])]
    plan = BudgetPlanner(curves).plan(1_000.0)
    assert plan.best.location_labels == 20  # the same expected value for less money


def test_cost_model_parameters_change_the_answer():
    # masks at 3 clicks cost 2 extra clicks each: $5 buys 90 masks now
    model = AnnotationCostModel(seg_clicks=3)
    plan = BudgetPlanner(_curves(), cost_model=model).plan(5.0)
    assert plan.best.option == "seg" and plan.best.location_labels == 90


def test_curves_from_records_average_seeds_and_handle_missing_budgets(tmp_path):
    records = []
    for seed, (a, b) in enumerate([(0.5, 0.8), (0.7, 1.0)]):
        records += [{"level": "seg", "model": "pixel", "score": "mean", "seed": seed, "location_labels": 10,
                     "robust_auroc": a, "overall_auroc": 0.9},
                    {"level": "seg", "model": "pixel", "score": "mean", "seed": seed, "location_labels": None,
                     "robust_auroc": b, "overall_auroc": 0.95},
                    {"level": "seg", "model": "ssl", "score": "mean", "seed": seed, "location_labels": 10,
                     "robust_auroc": b, "overall_auroc": 0.9},
                    {"level": "binary", "model": "pixel", "score": "mean", "seed": seed, "location_labels": None,
                     "robust_auroc": 0.1 * seed, "overall_auroc": 0.7},
                    {"level": "seg", "model": "pixel", "score": "max", "seed": seed, "location_labels": 10,
                     "robust_auroc": 0.0},
                    {"level": "seg", "model": "mixed", "score": "mean", "seed": seed, "location_labels": 30,
                     "location_mix": {"seg": 10, "bbox": 20}, "robust_auroc": 0.2}]
    curves = {c.option: c for c in curves_from_records(records, training_size=150)}
    assert set(curves) == {"seg", "seg (ssl)", "binary"}  # a mix of levels is no curve of one level
    assert curves["seg"].budgets == (10, 150)
    assert curves["seg"].robust == pytest.approx((0.6, 0.9)) and curves["seg"].robust_std == pytest.approx((0.1, 0.1))
    assert curves["binary"].robust == pytest.approx((0.05,)) and curves["binary"].n_seeds == (2,)
    assert curves_from_records(records)[0].budgets == (10,)  # no training size: the all-sample runs are left out
    path = tmp_path / "results.json"
    path.write_text(json.dumps(records))
    assert load_results(tmp_path) == records and load_results(path) == records
    with pytest.raises(ValueError, match="score 'topk:4'"):
        curves_from_records(records, score="topk:4")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_results(tmp_path / "nowhere")


def test_errors_name_the_parameter():
    with pytest.raises(ValueError, match="budget"):
        BudgetPlanner(_curves()).plan(-1.0)
    with pytest.raises(ValueError, match="positive_fraction"):
        BudgetPlanner(_curves(), positive_fraction=0.0)
    with pytest.raises(ValueError, match="unique"):
        BudgetPlanner(_curves() + _curves()[:1])
    with pytest.raises(ValueError, match="increasing"):
        _curve("seg", "seg", [20, 10], [0.5, 0.6])
    assert option_name("seg", "ssl") == "seg (ssl)" and option_name("bbox") == "bbox"
