"""A study's runs, configuration checks and reports, without training."""

from __future__ import annotations

import csv
import math

import pytest

from spatialspec.atomic import atomic_write, write_json_atomic
from spatialspec.study import (
    StudyConfig,
    bundle_for,
    find_bundles_dir,
    format_table,
    plot_results,
    study_runs,
    summarize,
    write_summary_csv,
)
from spatialspec.study.bundles import study_level
from spatialspec.study.report import row_label
from spatialspec.study.runner import fitted_values


@pytest.mark.parametrize(
    "level, model, bundle",
    [("binary", "pixel", "segmentation"), ("binary", "classifier", "binary_classification"),
     ("seg", "pixel", "segmentation"), ("patch:4", "pixel", "segmentation"), ("dilate:2", "pixel", "segmentation"),
     ("bbox", "pixel", "bbox_segmentation"), ("bbox:all", "pixel", "bbox_segmentation")],
)
def test_bundle_for(level, model, bundle):
    assert bundle_for(level, model) == bundle


def test_bundle_for_rejects_classifier_on_location_levels():
    with pytest.raises(ValueError, match="seg"):
        bundle_for("seg", "classifier")


def test_find_bundles_dir_in_source_tree_and_error(tmp_path, monkeypatch):
    monkeypatch.delenv("SPATIALSPEC_BUNDLES", raising=False)
    found = find_bundles_dir()
    assert (found / "segmentation" / "configs" / "train.yaml").is_file()
    monkeypatch.setenv("SPATIALSPEC_BUNDLES", str(tmp_path))
    assert find_bundles_dir() == found  # an empty env folder falls through to the source tree
    assert find_bundles_dir(found) == found


def test_study_runs_binary_models_only_multiply_binary():
    config = StudyConfig(levels=["binary", "bbox", "dilate:2.0"], seeds=[0, 1], binary_models=["pixel", "classifier"])
    keys = [run.key for run in study_runs(config)]
    assert keys == ["binary-pixel-s0", "binary-pixel-s1", "binary-classifier-s0", "binary-classifier-s1",
                    "bbox-pixel-s0", "bbox-pixel-s1", "dilate2-pixel-s0", "dilate2-pixel-s1"]
    assert len(set(keys)) == len(keys)


def test_study_runs_baselines_are_binary_runs_with_their_bundles():
    config = StudyConfig(levels=["binary", "seg"], methods=["JTT", "george"], seeds=[0, 1],
                         binary_models=["classifier"])
    runs = study_runs(config)
    assert [(r.level, r.model, r.bundle) for r in runs if r.seed == 0] == [
        ("binary", "classifier", "binary_classification"), ("seg", "pixel", "segmentation"),
        ("binary", "jtt", "jtt_classification"), ("binary", "george", "george_classification")]
    assert [r.key for r in runs if r.model == "jtt"] == ["binary-jtt-s0", "binary-jtt-s1"]
    with pytest.raises(ValueError, match="jtt, george"):
        study_level("dropout")
    with pytest.raises(ValueError, match="image labels only"):
        bundle_for("seg", "jtt")


def test_methods_given_as_levels_move_to_methods_with_a_warning():
    with pytest.warns(FutureWarning, match="jtt, seg-ssl are methods"):
        config = StudyConfig(levels=["seg", "jtt", "seg-ssl"], seeds=[0])
    assert config.levels == ["seg"] and config.methods == ["jtt", "seg-ssl"]
    assert [r.model for r in study_runs(config)] == ["pixel", "jtt", "ssl"]
    with pytest.raises(ValueError, match="unknown method 'seg'"):
        StudyConfig(levels=["seg"], methods=["seg"], seeds=[0])
    with pytest.raises(ValueError, match="together name at least one"):
        StudyConfig(levels=[], methods=[], seeds=[0])


def test_a_mask_guided_method_trains_at_the_level_its_entry_names():
    """``METHOD:LEVEL`` (issue 15): the mask-guided classifiers take their location label from any level."""
    config = StudyConfig(levels=[], methods=["RRR:BBox", "rrr", "gain:dilate:2"], seeds=[0], location_labels=[8])
    assert config.methods == ["rrr:bbox", "rrr", "gain:dilate:2"]
    assert [(r.level, r.model, r.bundle, r.key) for r in study_runs(config)] == [
        ("bbox", "rrr", "mask_guided_classification", "bbox-rrr-n8-s0"),
        ("seg", "rrr", "mask_guided_classification", "seg-rrr-n8-s0"),
        ("dilate:2", "gain", "mask_guided_classification", "dilate2-gain-n8-s0")]
    with pytest.raises(ValueError, match="seg-ssl trains at seg only"):
        StudyConfig(levels=[], methods=["seg-ssl:bbox"], seeds=[0])
    with pytest.raises(ValueError, match="jtt trains at binary only"):
        StudyConfig(levels=[], methods=["jtt:seg"], seeds=[0])
    with pytest.raises(ValueError, match="method 'rrr:bogus'"):
        StudyConfig(levels=[], methods=["rrr:bogus"], seeds=[0])


def test_row_label_names_the_baseline():
    assert row_label({"level": "binary", "model": "george"}) == "binary (george)"
    assert row_label({"level": "binary", "model": "classifier"}) == "binary (classifier)"
    assert row_label({"level": "seg", "model": "pixel"}) == "seg"


@pytest.mark.parametrize(
    "kwargs, message",
    [({"levels": ["nope"]}, "nope"), ({"scores": ["median"]}, "median"), ({"binary_models": ["vit"]}, "vit"),
     ({"epochs": 0}, "epochs"), ({"seeds": []}, "seeds")],
)
def test_study_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StudyConfig(**kwargs)


def test_tracking_uri_default_and_disabled(tmp_path):
    config = StudyConfig(out_dir=str(tmp_path))
    assert config.tracking_enabled
    assert config.resolved_tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlruns.db"
    assert not StudyConfig(tracking_uri="none").tracking_enabled
    assert StudyConfig(tracking_uri="http://127.0.0.1:5000").resolved_tracking_uri() == "http://127.0.0.1:5000"


def _record(level, seed, robust, overall, model="pixel", score="mean"):
    return {"level": level, "model": model, "score": score, "seed": seed, "robust_auroc": robust,
            "overall_auroc": overall, "worst_pair_auroc": min(robust, overall), "wall_s": 1.0 + seed}


def test_summarize_mean_std_and_nan():
    records = [_record("binary", 0, 0.1, 0.8), _record("binary", 1, 0.3, 0.6), _record("seg", 0, 1.0, 1.0),
               _record("seg", 1, math.nan, 0.9), _record("binary", 0, 0.5, 0.5, model="classifier")]
    rows = summarize(records)
    assert [(r["level"], r["model"]) for r in rows] == [("binary", "pixel"), ("seg", "pixel"), ("binary", "classifier")]
    binary = rows[0]
    assert binary["n_seeds"] == 2
    assert binary["robust_auroc_mean"] == pytest.approx(0.2)
    assert binary["robust_auroc_std"] == pytest.approx(0.1)
    assert binary["overall_auroc_mean"] == pytest.approx(0.7)
    assert binary["wall_s_mean"] == pytest.approx(1.5)
    seg = rows[1]
    assert seg["robust_auroc_mean"] == pytest.approx(1.0)  # NaN seeds are left out of the mean
    assert seg["robust_auroc_std"] == pytest.approx(0.0)


def test_summarize_keeps_a_mix_apart_from_a_plain_run_of_its_total():
    plain = {**_record("seg", 0, 0.9, 0.9, model="mixed"), "location_labels": 80}
    mix = {**_record("seg", 0, 0.1, 0.5, model="mixed"), "location_labels": 80, "location_mix": {"seg": 20, "bbox": 60}}
    rows = summarize([plain, {**mix, "seed": 1}, mix])
    assert [(r["n_seeds"], r.get("location_mix")) for r in rows] == [(1, None), (2, "seg=20,bbox=60")]
    assert rows[1]["robust_auroc_mean"] == pytest.approx(0.1)
    assert row_label(mix) == "seg (mixed) seg=20,bbox=60" and row_label(plain) == "seg (mixed) n=80"


def test_fitted_values_are_read_from_the_trainer_metrics():
    assert fitted_values({"dfr_C": 0.3, "dfr_tuning_score": 0.75, "loss": 1.0}, ("dfr_C",)) == {"dfr_C": 0.3}
    assert fitted_values({"loss": 1.0}, ()) == {}
    with pytest.raises(RuntimeError, match="no dfr_C"):
        fitted_values({"loss": 1.0}, ("dfr_C", "loss"))


def test_reports_written(tmp_path):
    rows = summarize([_record("binary", 0, 0.1, 0.8), _record("seg", 0, 0.97, 0.99),
                      _record("seg", 0, 0.95, 0.99, score="max")])
    path = write_summary_csv(rows, tmp_path / "summary.csv")
    with open(path) as f:
        read = list(csv.DictReader(f))
    assert [r["level"] for r in read] == ["binary", "seg", "seg"]
    assert float(read[1]["robust_auroc_mean"]) == pytest.approx(0.97)
    png = plot_results(rows, tmp_path / "plot.png", title="t")
    assert png.read_bytes()[:4] == b"\x89PNG"
    table = format_table(rows)
    assert "binary" in table and "0.970 +- 0.000" in table and "max" in table
    assert not list(tmp_path.glob(".*.tmp"))


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "results.json"
    write_json_atomic(target, [{"a": 1}])

    class Boom:
        def encode(self):
            raise RuntimeError("boom")

    with pytest.raises((RuntimeError, TypeError)):
        atomic_write(target, Boom())  # type: ignore[arg-type]
    assert target.read_text().startswith("[")
    assert not list(tmp_path.glob(".*.tmp"))
