"""spatialspec.cost.frontier (issue 15 section 5): annotation cost per method and budget, the Pareto front against a
brute-force scan, the frontier's points from summary rows, and its table, CSV and figure."""

from __future__ import annotations

import csv
import itertools
import math
import random

import pytest

from spatialspec.cost import AnnotationCostModel
from spatialspec.cost.frontier import (
    frontier_markdown,
    frontier_points,
    location_cost,
    pareto_flags,
    plot_frontier,
    write_frontier_csv,
)


def _row(level, model, n, robust, std=0.0, wall=10.0, ci=(None, None), mix=None, score="mean"):
    row = {"level": level, "model": model, "score": score, "n_seeds": 3, "location_labels": n,
           "robust_auroc_mean": robust, "robust_auroc_std": std, "robust_auroc_ci_low": ci[0],
           "robust_auroc_ci_high": ci[1], "overall_auroc_mean": 0.8, "wall_s_mean": wall}
    return {**row, **({"location_mix": mix} if mix else {})}


def test_location_cost_prices_positives_of_the_level_and_nothing_for_image_labels():
    model = AnnotationCostModel()
    assert location_cost("seg", "pixel", 20, 0.9) == pytest.approx(model.estimate("seg", positives=18).extra_cost)
    assert location_cost("bbox", "pixel", 40) == pytest.approx(model.estimate("bbox", positives=40).extra_cost)
    assert location_cost("seg", "rrr", 7, 0.5) == pytest.approx(model.estimate("seg", positives=4).extra_cost)
    for model_name in ("pixel", "classifier", "jtt", "george", "dfr"):
        assert location_cost("binary", model_name, 0) == 0.0
    mix = location_cost("seg", "mixed", 80, 1.0, mix={"seg": 20, "bbox": 60})
    assert mix == pytest.approx(model.estimate("seg", positives=20).extra_cost
                                + model.estimate("bbox", positives=60).extra_cost)
    assert 0 < location_cost("bbox", "pixel", 20) < location_cost("seg", "pixel", 20)
    with pytest.raises(ValueError, match="positive_fraction"):
        location_cost("seg", "pixel", 5, 0.0)


def _dominated_brute_force(points, i):
    cost, value = points[i]
    return math.isnan(value) or any(
        c <= cost and v >= value and (c, v) != (cost, value) for j, (c, v) in enumerate(points)
        if j != i and not math.isnan(v))


def test_pareto_flags_equal_a_brute_force_scan():
    rng = random.Random(0)
    for _ in range(200):
        points = [(rng.choice([0.0, 0.5, 1.0, 2.0, 5.0]), rng.choice([0.1, 0.5, 0.5, 0.9, math.nan]))
                  for _ in range(rng.randint(1, 8))]
        flags = pareto_flags([c for c, _ in points], [v for _, v in points])
        assert flags == [not _dominated_brute_force(points, i) for i in range(len(points))]
    # a fixed case: the free point, the cheap good one and the best; equal points are both kept
    assert pareto_flags([0, 1, 2, 3, 3], [0.2, 0.9, 0.5, 1.0, 1.0]) == [True, True, False, True, True]
    # within the tolerance a dearer point is no better, and a cheaper one no worse
    assert pareto_flags([0, 1, 2], [0.5, 0.9999, 1.0], tolerance=5e-4) == [True, True, False]
    assert pareto_flags([0, 1, 2], [0.5, 0.9999, 1.0]) == [True, True, True]
    assert pareto_flags([1, 1], [0.9996, 1.0], tolerance=5e-4) == [True, True]


def test_frontier_points_from_summary_rows():
    rows = [_row("binary", "pixel", None, 0.0, wall=10.0), _row("binary", "classifier", None, 0.1, wall=4.0),
            _row("binary", "dfr", None, 0.6, wall=4.4), _row("binary", "jtt", None, 0.05, wall=8.0),
            _row("seg", "pixel", 5, 0.8, 0.1, wall=5.0, ci=(0.7, 0.85)), _row("seg", "pixel", None, 0.95, wall=15.0),
            _row("bbox", "pixel", 5, 0.9, wall=5.0), _row("seg", "rrr", 5, 0.5, wall=12.0),
            _row("seg", "mixed", 80, 0.7, mix="seg=20,bbox=60"), _row("seg", "pixel", 5, 0.0, score="max")]
    points = frontier_points(rows, positive_fraction=0.8, training_size=150)
    by = {(p.method, p.location_labels): p for p in points}
    assert len(points) == 9  # the row of another score is left out
    model = AnnotationCostModel()
    seg_all = by[("seg", None)]
    assert seg_all.labelled == 150 and seg_all.cost == pytest.approx(model.estimate("seg", positives=120).extra_cost)
    assert by[("seg", 5)].cost == pytest.approx(model.estimate("seg", positives=4).extra_cost)
    assert by[("seg", 5)].robust_ci_low == 0.7 and by[("bbox", 5)].robust_ci_low is None
    assert by[("binary (dfr)", None)].cost == 0.0 and by[("binary (dfr)", None)].reads_spurious == "validation"
    assert by[("binary (jtt)", None)].reads_spurious == "never"
    assert by[("seg (mixed) seg=20,bbox=60", 80)].cost == pytest.approx(
        model.estimate("seg", positives=16).extra_cost + model.estimate("bbox", positives=48).extra_cost)
    # run time against the same family's ERM run on image labels
    assert by[("seg (rrr)", 5)].time_ratio == pytest.approx(12.0 / 4.0)
    assert by[("binary (dfr)", None)].time_ratio == pytest.approx(4.4 / 4.0)
    assert by[("seg", None)].time_ratio == pytest.approx(15.0 / 10.0)
    # cheapest first; the front: DFR (free), BBox-ERM at 5, Seg-ERM with every label
    assert [p.cost for p in points] == sorted(p.cost for p in points)
    assert {p.method + f"@{p.location_labels}" for p in points if p.pareto} == {
        "binary (dfr)@None", "bbox@5", "seg@None"}
    assert all(p.reads_spurious == "validation" for p in
               frontier_points(rows, training_size=150, selection_reads_spurious=True))
    # without a training size the 'all' runs cannot be priced and are left out
    assert all(p.location_labels is not None or p.labelled == 0 for p in frontier_points(rows))
    with pytest.raises(ValueError, match="rows"):
        frontier_points([])


def test_frontier_table_csv_and_figure(tmp_path):
    rows = [_row("binary", "classifier", None, 0.1, wall=4.0), _row("seg", "pixel", 5, 0.8, 0.1, ci=(0.7, 0.85)),
            _row("seg", "gain", 5, 0.3)]
    points = frontier_points(rows, training_size=150)
    table = frontier_markdown(points).splitlines()
    assert len(table) == 2 + 3
    assert table[2].startswith("| binary (classifier) | - | 0.00 | **0.100 ± 0.000** |")
    seg = next(line for line in table if line.startswith("| seg | 5 |"))
    assert "**0.800 ± 0.100**" in seg and "[0.700, 0.850]" in seg and seg.endswith("| yes |")
    gain = next(line for line in table if line.startswith("| seg (gain) |"))
    assert "**" not in gain and gain.endswith("|  |")
    path = write_frontier_csv(points, tmp_path / "frontier.csv")
    with open(path) as f:
        read = list(csv.DictReader(f))
    assert [r["method"] for r in read] == [p.method for p in points]
    assert [float(r["cost"]) for r in read] == pytest.approx([p.cost for p in points])
    assert [r["pareto"] for r in read] == [str(p.pareto) for p in points]
    png = plot_frontier(points, tmp_path / "frontier.png", title="t")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_pareto_front_is_monotone_in_cost_and_robust_auroc():
    rng = random.Random(1)
    costs = [rng.uniform(0, 100) for _ in range(30)]
    values = [rng.uniform(0, 1) for _ in range(30)]
    front = sorted((c, v) for c, v, f in zip(costs, values, pareto_flags(costs, values)) if f)
    assert front and all(v2 > v1 for (_, v1), (_, v2) in itertools.pairwise(front))
    assert front[0][0] == min(costs) and front[-1][1] == max(values)
