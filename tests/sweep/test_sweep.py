"""``spatialspec sweep plan`` / ``run``: one command line per run, FINISHED runs skipped, failures reported."""

from __future__ import annotations

import json
import shlex

import pytest

from spatialspec.cli.main import main

TINY = ["--synthetic", "m=20", "--synthetic", "n=16", "--synthetic", "a=4", "--synthetic", "b=4",
        "--synthetic", "n_val=10", "--synthetic", "n_test=20", "--synthetic", "mu_y=0.5"]


def _plan(tmp_path, *extra):
    out = tmp_path / "plan.json"
    assert main(["sweep", "plan", "--out", str(out), "--out-dir", str(tmp_path / "runs"), "--epochs", "1",
                 *TINY, *extra]) == 0
    return json.loads(out.read_text())


def test_plan_has_one_entry_per_run(tmp_path):
    plan = _plan(tmp_path, "--levels", "seg,bbox", "--seeds", "0,1", "--location-labels", "5,all")
    keys = [r["key"] for r in plan["runs"]]
    assert len(keys) == 2 * 2 * 2 and len(set(keys)) == len(keys)
    for run in plan["runs"]:
        argv = run["argv"]
        assert shlex.split(run["command"]) == argv
        assert argv[:4] == ["python", "-m", "monai.bundle", "run"]
        assert argv[argv.index("--run_name") + 1] == run["key"]
        assert argv[argv.index("--seed") + 1] == str(run["seed"])
        assert argv[argv.index("--level") + 1] == run["level"]
        assert ("--location_labels" in argv) == (run["location_labels"] is not None)
        if run["location_labels"] is not None:
            assert argv[argv.index("--location_labels") + 1] == str(run["location_labels"])
    assert plan["tracking_uri"].startswith("sqlite:///") and plan["experiment_name"] == "spatialspec-sweep"


def test_run_rejects_a_file_that_is_not_a_plan(tmp_path, capsys):
    bad = tmp_path / "plan.json"
    bad.write_text(json.dumps({"runs": "x"}))
    assert main(["sweep", "run", str(bad)]) == 2
    assert "plan.json" in capsys.readouterr().err


@pytest.mark.slow
def test_run_skips_finished_and_reports_failures(tmp_path, capsys):
    plan = _plan(tmp_path, "--levels", "seg", "--seeds", "0,1")
    # make the second run fail: an unknown level
    broken = plan["runs"][1]["argv"]
    broken[broken.index("--level") + 1] = "nonsense"
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    assert main(["sweep", "run", str(tmp_path / "plan.json"), "--jobs", "2"]) == 1
    out, err = capsys.readouterr()
    assert "1 finished, 0 skipped" in out and "1 failed" in out
    assert plan["runs"][1]["key"] in err and plan["runs"][0]["key"] not in err

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=plan["tracking_uri"])
    runs = client.search_runs([client.get_experiment_by_name(plan["experiment_name"]).experiment_id])
    assert [(r.info.run_name, r.info.status) for r in runs] == [(plan["runs"][0]["key"], "FINISHED")]

    # again: the finished run is skipped, the failed one is tried again (and fails again)
    assert main(["sweep", "run", str(tmp_path / "plan.json")]) == 1
    out, _ = capsys.readouterr()
    assert "0 finished, 1 skipped" in out and f"{plan['runs'][0]['key']}: skipped" in out
