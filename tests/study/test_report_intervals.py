"""Study reports with uncertainty: the interval of the seed mean in summarize / summary.csv, the table and the plot,
and the record fields of spatialspec.study.predictions (no training: predictions written by hand)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from spatialspec.metrics import FIGURE_NAMES, bootstrap_intervals, seed_mean_interval, subgroup_aurocs
from spatialspec.study import StudyConfig, format_table, plot_results, summarize, write_summary_csv
from spatialspec.study.predictions import (
    CI_FIELDS,
    image_ids,
    predictions_filename,
    uncertainty_fields,
    write_predictions,
)


def _records(out, bootstrap=300, seeds=(0, 1, 2)):
    """Two levels x three seeds, each seed with its own test images, and their predictions files."""
    records = []
    for level, weight in (("binary", 0.2), ("seg", 2.0)):
        for seed in seeds:
            rng = np.random.default_rng(seed)
            y, s = rng.integers(0, 2, 150), rng.integers(0, 2, 150)
            score = rng.normal(size=150) + weight * y + (2.0 - weight) * s
            rel = f"runs/{level}-pixel-s{seed}/{predictions_filename('mean')}"
            write_predictions(out / rel, [f"i{i}" for i in range(150)], y, s, score)
            records.append({"level": level, "model": "pixel", "score": "mean", "seed": seed, "wall_s": 1.0,
                            "location_labels": None, "predictions": rel, "bootstrap": bootstrap,
                            **subgroup_aurocs(score, y, s), "_data": (score, y, s)})
    return records


def test_summary_interval_is_the_bootstrap_of_the_seed_mean(tmp_path):
    records = _records(tmp_path)
    rows = summarize(records, out_dir=tmp_path)
    assert [r["level"] for r in rows] == ["binary", "seg"]
    for row in rows:
        members = [r for r in records if r["level"] == row["level"]]
        for figure in ("robust_auroc", "overall_auroc", "worst_pair_auroc"):
            expected = seed_mean_interval([m["_data"] for m in members], figure, n_resamples=300, seed=0)
            assert (row[f"{figure}_ci_low"], row[f"{figure}_ci_high"]) == pytest.approx(expected)
            assert row[f"{figure}_ci_low"] < row[f"{figure}_mean"] < row[f"{figure}_ci_high"]
    assert rows[0]["robust_auroc_ci_high"] < 0.5 < rows[1]["robust_auroc_ci_low"]
    # an explicit number of resamples overrides the records'
    other = summarize(records, out_dir=tmp_path, bootstrap=100)
    assert other[0]["robust_auroc_ci_low"] != rows[0]["robust_auroc_ci_low"]


@pytest.mark.parametrize("case", ["no_out_dir", "bootstrap_0", "missing_file", "no_predictions_field"])
def test_summary_without_intervals_has_empty_fields_and_valid_csv(tmp_path, case):
    records = _records(tmp_path, bootstrap=0 if case == "bootstrap_0" else 300)
    if case == "missing_file":
        (tmp_path / records[1]["predictions"]).unlink()
    if case == "no_predictions_field":
        del records[2]["predictions"]
    rows = summarize(records, out_dir=None if case == "no_out_dir" else tmp_path)
    binary = rows[0]
    assert binary["robust_auroc_ci_low"] is None and binary["overall_auroc_ci_high"] is None
    # the other level is unaffected by a problem with one binary run
    assert (rows[1]["robust_auroc_ci_low"] is None) == (case in ("no_out_dir", "bootstrap_0"))
    with open(write_summary_csv(rows, tmp_path / "summary.csv")) as f:
        read = list(csv.DictReader(f))
    assert read[0]["robust_auroc_ci_low"] == "" and float(read[0]["robust_auroc_mean"]) == pytest.approx(
        binary["robust_auroc_mean"])
    assert "-" in format_table(rows).splitlines()[2].split()
    assert plot_results(rows, tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_summary_csv_table_and_plot_show_the_interval(tmp_path):
    rows = summarize(_records(tmp_path), out_dir=tmp_path)
    with open(write_summary_csv(rows, tmp_path / "summary.csv")) as f:
        read = list(csv.DictReader(f))
    for name in ("robust_auroc_ci_low", "robust_auroc_ci_high", "overall_auroc_ci_low", "worst_pair_auroc_ci_high"):
        assert float(read[1][name]) == pytest.approx(rows[1][name])
    table = format_table(rows)
    assert "95% CI" in table.splitlines()[0]
    seg = rows[1]
    assert f"[{seg['robust_auroc_ci_low']:.3f}, {seg['robust_auroc_ci_high']:.3f}]" in table
    # the plot with intervals differs from the plot of the same means without them
    with_ci = plot_results(rows, tmp_path / "ci.png").read_bytes()
    plain = [{k: v for k, v in r.items() if "_ci_" not in k} for r in rows]
    without = plot_results(plain, tmp_path / "plain.png").read_bytes()
    assert with_ci[:4] == without[:4] == b"\x89PNG" and with_ci != without


def test_uncertainty_fields():
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 100), rng.integers(0, 2, 100)
    score = rng.normal(size=100) + y
    fields = uncertainty_fields(score, y, s, 200, seed=3)
    assert fields["bootstrap"] == 200
    assert fields["subgroup_counts"] == {f"y{a}s{b}": int(np.sum((y == a) & (s == b))) for a in (0, 1)
                                         for b in (0, 1)}
    assert set(CI_FIELDS) == {f"{name}_ci" for name in FIGURE_NAMES} <= set(fields)
    intervals = bootstrap_intervals(score, y, s, n_resamples=200, seed=3)
    assert fields["robust_auroc_ci"] == list(intervals["robust_auroc"])
    json.dumps(fields)  # JSON-ready
    off = uncertainty_fields(score, y, s, 0, seed=3)
    assert off["bootstrap"] == 0 and all(off[name] is None for name in CI_FIELDS)
    assert off["subgroup_counts"] == fields["subgroup_counts"]


def test_image_ids_follow_the_entries_only_when_they_match():
    entries = [{"id": "a", "y": 1, "s": 0}, {"id": "b", "y": 0, "s": 0}, {"image": "img/c.png", "y": 1, "s": 1}]
    y, s = np.array([1.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0])
    assert image_ids(entries, y, s) == ["a", "b", "img/c.png"]
    assert image_ids(entries, y[::-1], s[::-1]) == ["#0", "#1", "#2"]  # not in the entries' order
    assert image_ids(entries[:2], y, s) == ["#0", "#1", "#2"]


def test_study_config_bootstrap_is_validated():
    assert StudyConfig().bootstrap == 1000
    assert StudyConfig(bootstrap=0).bootstrap == 0
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="bootstrap"):
            StudyConfig(bootstrap=bad)

