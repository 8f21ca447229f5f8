"""``spatialspec plan``: the budget planner from results files and MLflow runs (Sec. 4.1 costs, Sec. 5.2 curves)."""

from __future__ import annotations

import json
import math

import pytest

from spatialspec.cli.main import main


def _records():
    records = []
    for seed in (0, 1):
        for n, robust in ((10, 0.6), (100, 0.9)):
            records.append({"level": "seg", "model": "pixel", "score": "mean", "seed": seed, "location_labels": n,
                            "robust_auroc": robust, "overall_auroc": 0.95, "run_key": f"seg-pixel-n{n}-s{seed}"})
            records.append({"level": "bbox", "model": "pixel", "score": "mean", "seed": seed, "location_labels": n,
                            "robust_auroc": robust - 0.2, "overall_auroc": 0.9})
        records.append({"level": "binary", "model": "pixel", "score": "mean", "seed": seed, "location_labels": None,
                        "robust_auroc": 0.1, "overall_auroc": 0.7})
    return records


@pytest.fixture
def results_dir(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(_records()))
    return tmp_path


def test_plan_prints_the_recommendation_and_alternatives(results_dir, capsys):
    assert main(["plan", "--budget", "50", "--results", str(results_dir)]) == 0
    out = capsys.readouterr().out
    # $50 buys 40 masks at $1.2222 each; log-linear: 0.6 + 0.3 log10(4) = 0.781
    assert "recommended: seg with 40 location labels: expected robust AUROC 0.781" in out
    assert "cost $48.89" in out
    lines = {line.split()[0]: line for line in out.splitlines()[4:] if line.strip()}
    assert set(lines) == {"seg", "bbox", "binary"}
    assert "100" in lines["bbox"] and "0.700" in lines["bbox"]  # boxes: the whole measured range fits
    assert "none" in lines["binary"]


def test_plan_json_and_cost_options(results_dir, capsys):
    argv = ["plan", "--budget", "5", "--results", str(results_dir / "results.json"), "--json", "--seg-clicks", "3",
            "--positive-fraction", "0.5"]
    assert main(argv) == 0
    content = json.loads(capsys.readouterr().out)
    # a mask now costs 2 extra clicks and half the images are positive: $5 buys 2 * 90 = 180 -> capped at 100
    assert content["best"]["option"] == "seg" and content["best"]["location_labels"] == 100
    assert content["best"]["cost"] == pytest.approx(50 * 2 / 36)
    assert {c["option"] for c in content["curves"]} == {"seg", "bbox", "binary"}


@pytest.mark.parametrize("argv, message", [
    (["plan", "--budget", "-3", "--results", "x"], "--budget"),
    (["plan", "--budget", "10"], "--results"),
    (["plan", "--budget", "10", "--results", "/no/such/results.json"], "/no/such/results.json"),
    (["plan", "--budget", "10", "--results", "x", "--positive-fraction", "1.5"], "--positive-fraction"),
])
def test_plan_bad_arguments(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse rejects bad values with status 2
        code = e.code
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_plan_reads_mlflow_runs(tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("budget-study")
    for record in _records():
        run = client.create_run(experiment)
        bundle = "bbox_segmentation" if record["level"] == "bbox" else "segmentation"
        params = {"bundle": bundle, "level": record["level"], "seed": record["seed"],
                  "location_labels": "none" if record["location_labels"] is None else record["location_labels"]}
        for key, value in params.items():
            client.log_param(run.info.run_id, key, value)
        client.log_metric(run.info.run_id, "test_robust_auroc_mean", record["robust_auroc"])
        client.log_metric(run.info.run_id, "test_overall_auroc_mean", record["overall_auroc"])
    client.create_run(experiment)  # a run without figures (e.g. the study's parent run) is skipped
    assert main(["plan", "--budget", "50", "--mlflow", uri, "--experiment", "budget-study", "--json"]) == 0
    content = json.loads(capsys.readouterr().out)
    assert content["best"]["option"] == "seg" and content["best"]["location_labels"] == 40
    assert content["best"]["robust_auroc"] == pytest.approx(0.6 + 0.3 * math.log10(4))
