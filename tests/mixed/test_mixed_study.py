"""The ``mixed`` method in ``spatialspec study`` and in ``python -m monai.bundle run`` (issue 15, Sec. 3): a budget,
a mask / box mix, the images beyond it kept as binary, and bad mixes refused in one line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from spatialspec import registry
from spatialspec.cli.main import main
from spatialspec.data import load_split
from spatialspec.data.subsample import location_subset
from spatialspec.study import StudyConfig, study_runs
from spatialspec.study.bundles import split_methods
from spatialspec.study.runner import train_overrides

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY = {"m": 24, "n": 16, "a": 4, "b": 4, "n_val": 10, "n_test": 20, "mu_y": 0.5}
SYNTHETIC = [arg for key, value in TINY.items() for arg in ("--synthetic", f"{key}={value}")]


def test_methods_parse_with_a_mix():
    assert split_methods("mixed:seg=20,bbox=60,jtt,mixed") == ["mixed:seg=20,bbox=60", "jtt", "mixed"]
    config = StudyConfig(levels=[], methods=split_methods("mixed:SEG=2,bbox=4,mixed:bbox"), seeds=[0],
                         location_labels=[5, 10])
    runs = study_runs(config)
    assert [r.key for r in runs] == ["seg-mixed-n6-seg=2_bbox=4-s0", "bbox-mixed-n5-s0", "bbox-mixed-n10-s0"]
    assert train_overrides(config, runs[0])["location_mix"] == {"seg": 2, "bbox": 4}
    assert "location_mix" not in train_overrides(config, runs[1]) and runs[1].bundle == "segmentation"


@pytest.mark.slow
def test_study_trains_a_budget_and_a_mix_keeping_the_rest_binary(tmp_path):
    out = tmp_path / "study"
    argv = ["study", "--levels", "", "--methods", "mixed,mixed:seg=2,bbox=4", "--seeds", "0", "--epochs", "1",
            "--location-labels", "5", "--bootstrap", "0", "--out", str(out), "--no-progress", *SYNTHETIC]
    assert main(argv) == 0
    records = json.loads((out / "results.json").read_text())
    assert sorted((r["level"], r["model"], r["location_labels"]) for r in records) == [("seg", "mixed", 5),
                                                                                        ("seg", "mixed", 6)]
    # the mix is in its record and its own summary row, apart from a plain run of the same total
    assert [r.get("location_mix") for r in sorted(records, key=lambda r: r["location_labels"])] == [
        None, {"seg": 2, "bbox": 4}]
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["location_mix"] for r in rows) == ["", "seg=2,bbox=4"]
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlruns.db'}")
    experiment = client.get_experiment_by_name("spatialspec-study")
    runs = {run.info.run_name: run.data for run in client.search_runs([experiment.experiment_id])}
    data = load_split("training", None, TINY, 0)
    for key, budget in (("seg-mixed-n5-s0", 5), ("seg-mixed-n6-seg=2_bbox=4-s0", 6)):
        run = runs[key]
        assert run.params["method"] == "mixed" and run.params["location_labels"] == str(budget)
        # what the trainer saw: every training image, the budget's located plus the negatives beyond it (free)
        labelled = {e["id"] for e in location_subset(data, budget, 0)}
        binary = sum(e["y"] for e in data if e["id"] not in labelled)
        assert binary > 0
        assert run.metrics["mixed_located"] == pytest.approx(1 - binary / len(data))
        assert run.metrics["mixed_mil"] > 0
    mix = runs["seg-mixed-n6-seg=2_bbox=4-s0"].params
    assert (mix["location_mix.seg"], mix["location_mix.bbox"]) == ("2", "4")


@pytest.mark.parametrize("methods, message", [
    ("mixed:seg=x", "method 'mixed:seg=x': the count of 'seg' must be an integer >= 1 (LEVEL=N), got 'x'"),
    ("mixed:seg=20,bbox=10", "location_labels: the budget 30 exceeds the 24 samples"),
])
def test_bad_mix_ends_in_one_line(methods, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["study", "--levels", "", "--methods", methods, "--seeds", "0", "--epochs", "1", "--out", str(out),
                 "--no-progress", *SYNTHETIC]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


@pytest.mark.slow
def test_monai_bundle_run_trains_and_evaluates(tmp_path):
    out = tmp_path / "out"
    common = ["--meta_file", str(registry.meta_file("mixed").relative_to(REPO_ROOT)), "--output_dir", str(out),
              "--synthetic", repr(TINY), "--location_labels", "6", "--location_mix", repr({"seg": 2, "bbox": 4})]
    for kind, extra in (("train", ["--epochs", "1"]), ("evaluate", [])):
        files = repr([str(p.relative_to(REPO_ROOT)) for p in registry.config_files("mixed", kind)])
        proc = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", files, *extra, *common],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "test_robust_auroc" in (out / "metrics.csv").read_text()
