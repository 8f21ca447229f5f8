"""The mask-guided classifier bundle (issue 15): each method builds from its config chain, trains at a location level
with a label budget, resumes after SIGKILL, and runs from ``spatialspec study`` with its MLflow records. Tiny
synthetic data; everything is written under pytest's ``tmp_path``. (``python -m monai.bundle run`` train ->
evaluate -> inference and the metadata/property checks of the bundle: ``rrr`` in tests/bundles/test_bundles.py.)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from spatialspec import registry
from spatialspec.cli.main import main
from spatialspec.data import load_split
from spatialspec.data.subsample import location_subset
from spatialspec.supervision import specificity_supervision

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / "handlers"), str(TESTS / "bundles")]
# the in-process workflow on tiny data (24 training images, batch 8) of the label-budget tests, and the SIGKILL
# machinery of the resume tests
from test_budget_configs import BUNDLES, TINY, _workflow  # noqa: E402
from test_resume import assert_method_resumes_as_if_uninterrupted  # noqa: E402

GUIDED = ("rrr", "gradmask", "actdiff", "gain")
# each method at another level: every level kind of the methods is trained once
LEVELS = {"rrr": "seg", "gradmask": "bbox", "actdiff": "dilate:2", "gain": "patch:4"}


def test_registry_entries_and_study_tables():
    from spatialspec.study.bundles import BASELINES, IMAGE_LABEL_BUNDLES, METHODS, bundle_for, study_level

    for name in GUIDED:
        entry = registry.method(name)
        assert (entry.family, entry.model, entry.cost_label, entry.budgets) == ("classifier", name, "level", True)
        assert entry.levels[0] == "seg" and set(entry.levels) == {"seg", "bbox", "dilate", "patch"}
        assert [p.name for p in registry.config_files(name)][-2:] == ["train.yaml", f"{name}.yaml"]
        assert METHODS[name] == ("seg", name) and name not in BASELINES and study_level(name.upper()) == name
        assert bundle_for("patch:4", name) == "mask_guided_classification"
    assert "mask_guided_classification" not in IMAGE_LABEL_BUNDLES
    with pytest.raises(ValueError, match="not 'binary'"):
        registry.method_for_run("binary", "gain")
    folder = BUNDLES / "mask_guided_classification"
    assert registry.bundle_config_files(folder, ["train.yaml", "gain.yaml"]) == registry.config_files("gain")


@pytest.mark.slow
@pytest.mark.parametrize("name", GUIDED)
def test_method_trains_at_a_level_with_a_label_budget(name, tmp_path):
    level = LEVELS[name]
    workflow = _workflow(name, tmp_path, location_labels=6, seed=1, level=level, epochs=1)
    workflow.initialize()
    assert workflow.check_properties() == []
    parser = workflow.parser
    # every training image trains; the budget's images (the same as every location bundle's) carry their label
    data = parser.get_parsed_content("train#data")
    expected = [e["id"] for e in location_subset(load_split("training", None, TINY, 1), 6, 1)]
    assert len(data) == TINY["m"] and [e["id"] for e in data if e["has_location"]] == expected
    item = parser.get_parsed_content("train#dataset")[0]
    mask = load_split("training", None, TINY, 1)[0]["label"]
    np.testing.assert_array_equal(np.asarray(item["location"]), specificity_supervision(np.asarray(mask), level))
    assert int(item["label"]) == data[0]["y"]
    workflow.run()
    trainer = parser.get_parsed_content("train#trainer")
    objective = parser.get_parsed_content("guided_objective")
    assert trainer.loss_function is objective and objective.loss.weight == 1.0
    assert trainer.state.iteration == 3  # 24 images, batch 8
    assert {f"{name}_ce", f"{name}_guided"} <= set(trainer.state.metrics)
    assert trainer.state.metrics[f"{name}_guided"] > 0
    params = parser.get_parsed_content("run_params")
    assert params["method"] == name and params[f"{name}_weight"] == 1.0 and params["level"] == level
    # validation keeps the plain cross-entropy
    assert "val_loss" in parser.get_parsed_content("validate#evaluator").state.metrics
    assert (tmp_path / "models" / "model.pt").is_file()
    workflow.finalize()


def test_weight_override_reaches_the_loss_and_bad_values_fail_clearly(tmp_path):
    workflow = _workflow("gain", tmp_path, gain_weight=0.25)
    assert workflow.parser.get_parsed_content("guided_objective").loss.weight == 0.25
    bad = _workflow("actdiff", tmp_path, actdiff_weight=-1.0)
    with pytest.raises(RuntimeError, match="ActivationDifferenceLoss") as failure:
        bad.parser.get_parsed_content("guided_objective")
    assert isinstance(failure.value.__cause__, ValueError)
    assert "weight must be a number >= 0, got -1.0" in str(failure.value.__cause__)


# ---- SIGKILL in the middle of an epoch, then the same command again -------------------------------------------------


@pytest.mark.slow
def test_gradmask_resumes_after_sigkill_as_if_uninterrupted(tmp_path):
    assert_method_resumes_as_if_uninterrupted(tmp_path, "gradmask", "--level", "bbox")


# ---- the study ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_study_runs_the_methods_by_name_and_logs_them(tmp_path):
    out = tmp_path / "study"
    synthetic = [arg for key, value in TINY.items() for arg in ("--synthetic", f"{key}={value}")]
    argv = ["study", "--levels", "rrr", "--methods", "gain", "--seeds", "0", "--epochs", "1", "--location-labels", "8",
            "--bootstrap", "0", "--out", str(out), "--no-progress", *synthetic]
    with pytest.warns(FutureWarning, match="rrr are methods"):
        assert main(argv) == 0
    records = json.loads((out / "results.json").read_text())
    assert {(r["level"], r["model"], r["location_labels"]) for r in records} == {("seg", "rrr", 8), ("seg", "gain", 8)}
    assert all(0.0 <= r["overall_auroc"] <= 1.0 for r in records)
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlruns.db'}")
    experiment = client.get_experiment_by_name("spatialspec-study")
    runs = {run.info.run_name: run.data for run in client.search_runs([experiment.experiment_id])}
    rrr, gain = runs["seg-rrr-n8-s0"], runs["seg-gain-n8-s0"]
    assert rrr.params["method"] == "rrr" and float(rrr.params["rrr_weight"]) == 1.0
    assert rrr.params["bundle"] == "mask_guided_classification" and rrr.params["location_labels"] == "8"
    assert rrr.metrics["rrr_guided"] > 0 and 0.0 <= rrr.metrics["test_overall_auroc_mean"] <= 1.0
    assert gain.params["method"] == "gain" and "gain_ce" in gain.metrics
