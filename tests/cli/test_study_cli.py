"""The `spatialspec` command line: data export, the study on a tiny configuration, argument errors."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys

import mlflow
import pytest

from spatialspec.cli.main import main
from spatialspec.metrics import FIGURE_NAMES, subgroup_aurocs
from spatialspec.study.predictions import read_predictions

TINY = ["--synthetic", "m=24", "--synthetic", "n=16", "--synthetic", "a=4", "--synthetic", "b=5",
        "--synthetic", "n_val=12", "--synthetic", "n_test=40", "--synthetic", "mu_y=0.5"]


def test_data_synthetic_writes_datalist(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["data", "synthetic", "--out", str(out), *TINY]) == 0
    content = json.loads((out / "datalist.json").read_text())
    assert [len(content[k]) for k in ("training", "validation", "test")] == [24, 12, 40]
    entry = content["training"][0]
    assert {"image", "label", "spurious_mask", "y", "s"} <= set(entry)
    assert (out / entry["image"]).is_file()
    assert "datalist" in capsys.readouterr().out


@pytest.mark.slow
def test_study_tiny_end_to_end(tmp_path, capsys, monkeypatch):
    out = tmp_path / "study"
    argv = ["study", "--levels", "binary,seg", "--seeds", "0,1", "--epochs", "2", "--score", "mean,topk:4",
            "--binary-model", "pixel,classifier", "--out", str(out), "--no-progress", *TINY]
    assert main(argv) == 0
    records = json.loads((out / "results.json").read_text())
    # binary x {pixel, classifier} + seg, two seeds each, two scores each
    assert len(records) == 3 * 2 * 2
    for record in records:
        for key in ("level", "model", "score", "seed", "overall_auroc", "robust_auroc", "worst_pair_auroc", "n_test",
                    "wall_s", *FIGURE_NAMES):
            assert key in record, key
        assert record["n_test"] == 40
        assert record["wall_s"] >= 0
        # uncertainty (issue 13): subgroup sizes, 95% bootstrap intervals, the per-image predictions behind them
        assert sum(record["subgroup_counts"].values()) == 40 and record["bootstrap"] == 1000
        for name in FIGURE_NAMES:
            low, high = record[f"{name}_ci"]
            assert math.isnan(record[name]) or low <= record[name] <= high, name
        predictions = read_predictions(out / record["predictions"])
        assert len(predictions.ids) == 40 and predictions.ids[0] == "test_00000"
        assert subgroup_aurocs(predictions.score, predictions.y, predictions.s)["robust_auroc"] == pytest.approx(
            record["robust_auroc"], nan_ok=True)
    assert {(r["level"], r["model"]) for r in records} == {("binary", "pixel"), ("binary", "classifier"),
                                                          ("seg", "pixel")}
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 2
    assert {"robust_auroc_mean", "robust_auroc_std", "overall_auroc_mean", "robust_auroc_ci_low",
            "robust_auroc_ci_high"} <= set(rows[0])
    assert float(rows[0]["robust_auroc_ci_low"]) <= float(rows[0]["robust_auroc_ci_high"])
    assert (out / "robust_auroc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "robust AUROC" in printed and str(out / "robust_auroc.png") in printed
    # the study's HTML report, one results row per level and score (3 levels x 2 scores)
    page = (out / "report.html").read_text()
    assert str(out / "report.html") in printed and "Results per level, method and score" in page
    assert sorted(re.findall(r'data-level="([^"]+)" data-score="([^"]+)"', page)) == sorted(
        {(r["level"] if r["model"] == "pixel" else f"{r['level']} ({r['model']})", r["score"]) for r in rows})

    # this store only, and nothing left behind: mlflow.set_tracking_uri also sets MLFLOW_TRACKING_URI for later tests
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{out / 'mlruns.db'}")
    try:
        runs = mlflow.search_runs(experiment_names=["spatialspec-study"])
    finally:
        mlflow.set_tracking_uri(None)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    names = set(runs["tags.mlflow.runName"])
    assert {"binary-pixel-s0", "binary-classifier-s1", "seg-pixel-s1", "study"} <= names
    seg = runs[runs["tags.mlflow.runName"] == "seg-pixel-s0"].iloc[0]
    assert seg["params.level"] == "seg"
    assert seg["metrics.test_robust_auroc_mean"] == pytest.approx(
        next(r["robust_auroc"] for r in records if r["run_key"] == "seg-pixel-s0" and r["score"] == "mean"),
        nan_ok=True)
    study_id = runs[runs["tags.mlflow.runName"] == "study"].iloc[0]["run_id"]
    assert seg["tags.mlflow.parentRunId"] == study_id
    from mlflow.tracking import MlflowClient

    assert "report.html" in {a.path for a in MlflowClient(f"sqlite:///{out / 'mlruns.db'}").list_artifacts(study_id)}
    assert seg["metrics.test_robust_auroc_ci_high_mean"] == pytest.approx(
        next(r["robust_auroc_ci"][1] for r in records if r["run_key"] == "seg-pixel-s0" and r["score"] == "mean"),
        nan_ok=True)

    # the study folder is what `spatialspec compare` reads
    assert main(["compare", str(out), "--a", "binary (classifier)", "--b", "seg", "--score", "topk:4",
                 "--bootstrap", "50", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["seed"] for r in report["per_seed"]] == [0, 1] and report["pooled"]["n_images"] == 80


@pytest.mark.parametrize(
    "argv, message",
    [
        (["study", "--levels", "binary,nonsense"], "nonsense"),
        (["study", "--seeds", "zero"], "--seeds"),
        (["study", "--score", "median"], "median"),
        (["study", "--binary-model", "transformer"], "transformer"),
        (["study", "--synthetic", "b=99"], "b=99"),
        (["study", "--datalist", "/no/such/datalist.json"], "/no/such/datalist.json"),
        (["data", "synthetic", "--out", "x", "--synthetic", "rho=2"], "rho"),
    ],
)
def test_bad_arguments_exit_2_with_named_field(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bootstrap_option_of_the_study_only(capsys):
    from spatialspec.cli.main import build_parser
    from spatialspec.cli.study import config_from_args

    parser = build_parser()
    assert config_from_args(parser.parse_args(["study"])).bootstrap == 1000
    assert config_from_args(parser.parse_args(["study", "--bootstrap", "0"])).bootstrap == 0
    # a sweep only trains: it has no test-split intervals to configure
    with pytest.raises(SystemExit):
        parser.parse_args(["sweep", "create", "--out", "sweep.json", "--bootstrap", "200"])
    assert "unrecognized arguments: --bootstrap" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["study", "--bootstrap", "-1"])
    assert exit_info.value.code == 2
    assert "--bootstrap: must be an integer >= 0" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "spatialspec", "--version"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0
    assert result.stdout.startswith("spatialspec ")
