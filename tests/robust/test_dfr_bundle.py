"""The DFR bundle (issue 15; Kirichenko et al. 2023, a binary-label baseline next to Saab et al. 2022, Table 1):
``python -m monai.bundle run`` of its config chain trains, writes ``erm_model.pt``, ``model.pt`` and ``dfr.json``
and resumes after SIGKILL as if uninterrupted (a rerun of the finished run writes the same model);
``spatialspec study --methods dfr`` gives records of model ``dfr`` whose ERM part is the study's Binary-ERM
classifier, logged to MLflow. Tiny synthetic data, everything under pytest's ``tmp_path``. (Train -> evaluate ->
inference and the metadata/property checks: ``dfr`` in tests/bundles/test_bundles.py.)"""

from __future__ import annotations

import ast
import json
import signal
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from monai.bundle import ConfigWorkflow

from spatialspec import registry
from spatialspec.cli.main import main

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / "handlers"), str(TESTS / "bundles")]
from test_bundles import TINY as BUNDLE_TINY  # noqa: E402
from test_resume import BATCH, EPOCHS, _finish, _kill_config, _start, _train_args  # noqa: E402

# the tests' tiny data with a validation split large enough for every (y, s) group in both halves
TINY = {**BUNDLE_TINY, "n_val": 40, "n_test": 40}


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _same(a: Path, b: Path) -> bool:
    first, second = _state(a), _state(b)
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def _close(a: Path, b: Path, atol: float = 1e-5) -> bool:
    """Equal up to float noise (a run in this process against one in a subprocess)."""
    first, second = _state(a), _state(b)
    return first.keys() == second.keys() and all(torch.allclose(first[k].double(), second[k].double(), rtol=0,
                                                                 atol=atol) for k in first)


def test_registry_entry_and_study_tables():
    from spatialspec.study.bundles import BASELINES, IMAGE_LABEL_BUNDLES, METHODS, STAGE_EPOCHS

    entry = registry.method("dfr")
    assert (entry.family, entry.model, entry.cost_label, entry.budgets, entry.reads_spurious, entry.levels) == \
        ("classifier", "dfr", "binary", False, "validation", ("binary",))
    assert not entry.two_stage and entry.image_labels_only
    assert BASELINES["dfr"] == "dfr_classification" and "dfr" not in METHODS
    assert "dfr_classification" not in STAGE_EPOCHS
    assert "dfr_classification" in IMAGE_LABEL_BUNDLES
    assert [str(p.relative_to(p.parents[2])) for p in registry.config_files("dfr")] == [
        "common/configs/train.yaml", "binary_classification/configs/train.yaml",
        "dfr_classification/configs/train.yaml"]
    assert registry.method_for_run("binary", "dfr") is entry


def _workflow(out: Path) -> ConfigWorkflow:
    """The train chain in this process, with the overrides of :func:`_args`."""
    meta = registry.meta_file("dfr")
    return ConfigWorkflow(config_file=[str(f) for f in registry.config_files("dfr")], meta_file=str(meta),
                          logging_file=False, workflow_type="train", bundle_root=str(meta.parents[1]),
                          output_dir=str(out), synthetic=TINY, batch_size=BATCH, epochs=EPOCHS, dfr_n_draws=3)


def _args(out: Path, extra_config: Path) -> list[str]:
    args = _train_args("dfr", "$" + repr(str(out)), "--batch_size", str(BATCH), "--dfr_n_draws", "3", epochs=EPOCHS,
                       synthetic=TINY)
    i = args.index("--config_file") + 1
    args[i] = repr([*ast.literal_eval(args[i]), str(extra_config)])
    return args


def _run(workflow: ConfigWorkflow) -> int | None:
    """Run the workflow; returns the epoch its resume handler continued from (``None``: started afresh)."""
    workflow.initialize()
    workflow.run()
    resumed = workflow.parser.get_parsed_content("train#resume").resumed_from
    workflow.finalize()
    return resumed


@pytest.mark.slow
def test_dfr_bundle_resumes_after_sigkill_and_reruns_to_the_same_model(tmp_path):
    """``python -m monai.bundle run`` is SIGKILLed in epoch 2 of 3; the same run continues (in this process, from what
    the killed process left on disk) and ends with the model of an uninterrupted run; rerunning the finished run
    writes the same DFR model again."""
    marker = tmp_path / "kill.marker"
    marker.touch()
    job = _start(_args(tmp_path / "killed", _kill_config(tmp_path / "kill.yaml", marker)), tmp_path / "killed.log")
    assert _run(_workflow(tmp_path / "ref")) is None
    first = _finish(job)
    assert first.returncode == -signal.SIGKILL, first.describe()
    assert not (tmp_path / "killed" / "models" / "dfr.json").exists()  # killed during ERM training
    assert _run(_workflow(tmp_path / "killed")) == 1

    models, ref = tmp_path / "killed" / "models", tmp_path / "ref" / "models"
    for name in ("erm_model.pt", "model.pt"):
        assert _close(models / name, ref / name), name
    record = json.loads((models / "dfr.json").read_text())
    assert record["C"] == json.loads((ref / "dfr.json").read_text())["C"] and record["C"] in record["c_grid"]
    assert record["n_draws"] == 3 and record["n_validation"] == TINY["n_val"]
    assert min(record["group_counts"].values()) == record["subset_size_per_group"] > 0
    assert not torch.equal(_state(models / "erm_model.pt")["fc.weight"], _state(models / "model.pt")["fc.weight"])

    # the finished run again: nothing trains, COMPLETED refits from erm_model.pt and writes the same model
    dfr_model = (models / "model.pt").read_bytes()
    assert _run(_workflow(tmp_path / "killed")) == EPOCHS
    assert (models / "model.pt").read_bytes() == dfr_model
    assert _close(models / "erm_model.pt", ref / "erm_model.pt")  # the ERM weights were not replaced
    assert json.loads((models / "dfr.json").read_text()) == record


@pytest.mark.slow
def test_study_runs_dfr_next_to_binary_erm(tmp_path):
    out = tmp_path / "study"
    synthetic = [arg for key, value in TINY.items() for arg in ("--synthetic", f"{key}={value}")]
    argv = ["study", "--levels", "binary", "--binary-model", "classifier", "--methods", "dfr", "--seeds", "0",
            "--epochs", "2", "--bootstrap", "0", "--out", str(out), "--no-progress", *synthetic]
    assert main(argv) == 0
    records = json.loads((out / "results.json").read_text())
    assert {(r["level"], r["model"]) for r in records} == {("binary", "classifier"), ("binary", "dfr")}
    assert all(0.0 <= r["overall_auroc"] <= 1.0 for r in records)
    runs = out / "runs"
    assert (runs / "binary-dfr-s0" / "models" / "dfr.json").is_file()
    # DFR's ERM model is the study's Binary-ERM classifier (same seed, data and selection); only fc differs
    assert _same(runs / "binary-dfr-s0" / "models" / "erm_model.pt", runs / "binary-classifier-s0" / "models" /
                 "model.pt")
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlruns.db'}")
    experiment = client.get_experiment_by_name("spatialspec-study")
    params = {r.info.run_name: r.data.params for r in client.search_runs([experiment.experiment_id])}
    assert params["binary-dfr-s0"]["method"] == "dfr" and params["binary-dfr-s0"]["dfr_n_draws"] == "10"
    # the chosen C and its tuning score: in the study's record and the run's MLflow metrics, as in dfr.json
    fit = json.loads((runs / "binary-dfr-s0" / "models" / "dfr.json").read_text())
    dfr = next(r for r in records if r["model"] == "dfr")
    assert dfr["dfr_C"] == fit["C"] and dfr["dfr_tuning_score"] == pytest.approx(fit["scores"][str(fit["C"])])
    metrics = {r.info.run_name: r.data.metrics for r in client.search_runs([experiment.experiment_id])}
    assert metrics["binary-dfr-s0"]["dfr_C"] == fit["C"]
    assert metrics["binary-dfr-s0"]["dfr_tuning_score"] == pytest.approx(dfr["dfr_tuning_score"])
    assert "dfr_C" not in next(r for r in records if r["model"] == "classifier")
    print({r["model"]: {k: r[k] for k in ("robust_auroc", "overall_auroc", "worst_pair_auroc")} for r in records})
