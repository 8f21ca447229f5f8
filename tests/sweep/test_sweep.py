"""``spatialspec sweep plan`` / ``run``: one command line per run, FINISHED runs skipped, failures reported."""

from __future__ import annotations

import json
import shlex

import pytest

from spatialspec.cli.main import build_parser, main
from spatialspec.cli.study import config_from_args
from spatialspec.study import expected_fingerprint, plan_runs
from spatialspec.sweep.run import entry_fingerprint

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
    # run identity: the fingerprint read from an entry's argv is the one the study gives that run
    config = config_from_args(build_parser().parse_args(
        ["study", "--levels", "seg,bbox", "--seeds", "0,1", "--location-labels", "5,all", "--epochs", "1",
         "--out", str(tmp_path / "runs"), "--experiment-name", "spatialspec-sweep", *TINY]))
    expected = {spec.key: expected_fingerprint(config, spec)["digest"] for spec in plan_runs(config)}
    assert {r["key"]: entry_fingerprint(r)["digest"] for r in plan["runs"][:3]} == {
        k: expected[k] for k in keys[:3]}
    assert len(set(expected.values())) == len(keys)


def _mutate_argv(run, name, value):
    argv = run["argv"]
    if name in argv:
        argv[argv.index(name) + 1] = value
    else:
        argv += [name, value]


@pytest.mark.parametrize("mutation, message", [
    (lambda r: r["argv"].__setitem__(slice(0, 4), ["bash", "-c", "echo", "x"]), "only 'python -m monai.bundle run"),
    (lambda r: r.__setitem__("key", "../../etc/cron"), "not a safe run name"),
    (lambda r: _mutate_argv(r, "--learning_rate", "$__import__('os').system('true')"), "config expression"),
    (lambda r: _mutate_argv(r, "--synthetic", "{'m': '%/etc/passwd'}"), "config expression"),
    (lambda r: _mutate_argv(r, "--network_def", "{'_target_': 'os.system', 'command': 'true'}"), "_target_"),
    (lambda r: _mutate_argv(r, "--network_def#_target_", "os.system"), "not accepted"),
    (lambda r: _mutate_argv(r, "--args_file", "/tmp/args.json"), "not accepted"),
    (lambda r: _mutate_argv(r, "--tracking", "/tmp/settings.json"), "only 'mlflow'"),
    (lambda r: _mutate_argv(r, "--config_file", "/etc/hosts"), "not a config file of the plan's bundle"),
    (lambda r: _mutate_argv(r, "--output_dir", "$'/tmp/elsewhere'"), "--output_dir must be"),
])
def test_run_refuses_entries_that_are_not_the_plans_own_commands(tmp_path, capsys, mutation, message):
    plan = _plan(tmp_path, "--levels", "seg", "--seeds", "0,1", "--tracking-uri", "none")
    mutation(plan["runs"][1])
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    capsys.readouterr()
    assert main(["sweep", "run", str(tmp_path / "plan.json")]) == 2
    err = capsys.readouterr().err
    assert "runs[1]" in err and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs" / "logs").exists()  # nothing ran


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

    # again: the finished run is skipped (its MLflow run carries the entry's fingerprint), the failed one is tried
    # again (and fails again)
    tags = runs[0].data.tags
    assert tags["spatialspec.fingerprint"] == entry_fingerprint(plan["runs"][0])["digest"]
    assert main(["sweep", "run", str(tmp_path / "plan.json")]) == 1
    out, _ = capsys.readouterr()
    assert "0 finished, 1 skipped" in out and f"{plan['runs'][0]['key']}: skipped" in out

    # the same run keys with other settings: not skipped, and the bundle refuses the folder of the other run
    other = _plan(tmp_path, "--levels", "seg", "--seeds", "0", "--synthetic", "rho=0.9")
    assert other["runs"][0]["key"] == plan["runs"][0]["key"]
    model = (tmp_path / "runs" / "runs" / plan["runs"][0]["key"] / "models" / "model.pt").read_bytes()
    assert main(["sweep", "run", str(tmp_path / "plan.json")]) == 1
    out, err = capsys.readouterr()
    assert "0 finished, 0 skipped" in out and "exit status 2" in err
    log = (tmp_path / "runs" / "logs" / f"{plan['runs'][0]['key']}.log").read_text()
    assert "error: " in log and "synthetic.rho: 1.0 -> 0.9" in log and "Traceback" not in log
    assert (tmp_path / "runs" / "runs" / plan["runs"][0]["key"] / "models" / "model.pt").read_bytes() == model
