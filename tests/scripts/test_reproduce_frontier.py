"""scripts/reproduce_frontier.py (issue 15 section 5): the study command it runs per setting, and (slow) the whole
script on a tiny setting: tuned, every output written and checked against the records, resumed without training."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from spatialspec.cost import AnnotationCostModel
from tests.scripts.helpers import ROOT, load_script

SCRIPT = ROOT / "scripts" / "reproduce_frontier.py"


def _option(level, model):
    return level if model == "pixel" else f"{level} ({model})"


def test_settings_give_the_study_command():
    script = load_script("reproduce_frontier")
    default = script.study_argv(script.parse_args(["--setting", "default"]))
    assert default[:3] == ["study", "--out", "runs/frontier-default"]
    value = {default[i]: default[i + 1] for i in range(1, len(default) - 1) if default[i].startswith("--")}
    assert value["--location-labels"] == "5,10,20,40,all" and value["--seeds"] == "0,1,2"
    assert value["--levels"] == "binary,bbox,seg" and value["--binary-model"] == "pixel,classifier"
    assert set(value["--methods"].split(",")) == {"jtt", "george", "dfr", "seg-ssl", "seg-spl", "mixed", "rrr",
                                                  "gradmask", "actdiff", "gain"}
    assert "--synthetic" not in default
    tuned = [default[i + 1].partition("=")[0] for i, a in enumerate(default) if a == "--tune"]
    assert sorted(tuned) == sorted(["rrr_weight", "gradmask_weight", "actdiff_weight", "gain_weight", "mil_weight",
                                    "spl_weight", "ssl_weight"])
    hard = script.study_argv(script.parse_args(["--setting", "hard"]))
    assert [hard[i + 1] for i, a in enumerate(hard) if a == "--synthetic"] == ["rho=0.9", "mu_a=1.0"]
    assert hard[hard.index("--location-labels") + 1] == "5,20,all" and hard[hard.index("--seeds") + 1] == "0,1"
    # only the weights of the methods trained are tuned; --no-tune tunes none
    some = script.study_argv(script.parse_args(["--methods", "rrr,dfr"]))
    assert [some[i + 1] for i, a in enumerate(some) if a == "--tune"] == ["rrr_weight=0.1,1,10"]
    assert "--tune" not in script.study_argv(script.parse_args(["--no-tune"]))


def test_bad_input_is_one_line_before_training(tmp_path, capsys):
    script = load_script("reproduce_frontier")
    out = tmp_path / "f"
    assert script.main(["--out", str(out), "--budgets", "5,nope", "--no-tune"]) == 2
    err = capsys.readouterr().err
    assert "--location-labels" in err and "nope" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.slow
def test_tiny_frontier_writes_every_output_and_resumes(tmp_path):
    out = tmp_path / "frontier"
    argv = [sys.executable, str(SCRIPT), "--out", str(out), "--levels", "binary,seg", "--methods", "dfr,rrr",
            "--budgets", "4,all", "--seeds", "0", "--epochs", "1", "--tune", "rrr_weight=0.1,10", "--tune-budget",
            "4", "--bootstrap", "50"]
    for item in ("m=20", "n=16", "a=4", "b=4", "n_val=16", "n_test=24", "mu_y=0.5"):
        argv += ["--synthetic", item]
    first = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    rrr = [r for r in results if r["model"] == "rrr"]
    weight = rrr[0]["tuned"]["rrr_weight"]
    assert weight in (0.1, 10) and all(r["tuned"] == {"rrr_weight": weight} for r in rrr)
    assert sorted(r["run_key"] for r in results) == sorted(
        ["binary-pixel-s0", "binary-classifier-s0", "binary-dfr-s0", "seg-pixel-n4-s0", "seg-pixel-s0",
         f"seg-rrr-n4-s0-rrr_weight={weight}", f"seg-rrr-s0-rrr_weight={weight}"])
    tuning = json.loads((out / "tuning.json").read_text())
    assert len(tuning) == 2  # both rrr weights trained once at budget 4, seed 0
    dfr = next(r for r in results if r["model"] == "dfr")
    assert dfr["dfr_C"] in (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)  # the fitted C, in the record too

    with open(out / "frontier.csv") as f:
        points = list(csv.DictReader(f))
    assert len(points) == len(results)  # one seed, one score: one point per run
    model = AnnotationCostModel()
    for point in points:
        record = next(r for r in results if _option(r["level"], r["model"]) == point["method"]
                      and str(r["location_labels"] or "") == point["location_labels"])
        assert float(point["robust_auroc"]) == pytest.approx(record["robust_auroc"])
        labelled = 0 if record["level"] == "binary" else record["location_labels"] or 20
        assert int(point["labelled"]) == labelled
        # positives: mu_y = 0.5 of the labelled images, the Sec. 4.1 extra cost of a mask each
        expected = 0.0 if not labelled else model.estimate("seg", positives=round(0.5 * labelled)).extra_cost
        assert float(point["cost"]) == pytest.approx(expected)
        low, high = record["robust_auroc_ci"]
        assert (float(point["robust_ci_low"]), float(point["robust_ci_high"])) == pytest.approx((low, high))
        assert point["reads_spurious"] == ("validation" if record["model"] == "dfr" else "never")
    free = [p for p in points if float(p["cost"]) == 0.0]
    best_free = max(float(p["robust_auroc"]) for p in free)
    assert all((p["pareto"] == "True") == (float(p["robust_auroc"]) == best_free) for p in free)
    table = (out / "frontier.md").read_text()
    assert table.count("\n") == len(points) + 2
    assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "report.html").is_file()

    # spatialspec plan recommends from the same curves: every method is an option, the free ones at no cost
    planned = subprocess.run([sys.executable, "-m", "spatialspec", "plan", "--results", str(out), "--budget", "1000",
                              "--training-size", "20", "--positive-fraction", "0.5", "--json"],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    options = {o["option"]: o for o in plan["options"]}
    assert set(options) == {_option(r["level"], r["model"]) for r in results}
    assert options["binary (dfr)"]["cost"] == 0.0 and options["binary (dfr)"]["robust_auroc"] == pytest.approx(
        dfr["robust_auroc"])
    best = max((o for o in plan["options"] if o["feasible"]), key=lambda o: (o["robust_auroc"], -o["cost"]))
    assert plan["best"]["robust_auroc"] == pytest.approx(best["robust_auroc"])

    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("model.pt")}
    second = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert json.loads((out / "results.json").read_text()) == results
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("model.pt")} == stamps  # nothing retrained
    assert (out / "frontier.md").read_text() == table
