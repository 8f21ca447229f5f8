"""``spatialspec sweep create`` / ``run``: one command line per run in a sweep file, FINISHED runs skipped, failures
reported; the files of the former ``sweep plan`` still read, and the command still answers, with a deprecation line."""

from __future__ import annotations

import json
import shlex

import pytest

from spatialspec.cli.main import build_parser, main
from spatialspec.cli.study import config_from_args
from spatialspec.cli.sweep import PLAN_DEPRECATION
from spatialspec.errors import InputError
from spatialspec.study import expected_fingerprint, study_runs
from spatialspec.sweep import SWEEP_FORMAT, read_sweep
from spatialspec.sweep.run import entry_fingerprint

TINY = ["--synthetic", "m=20", "--synthetic", "n=16", "--synthetic", "a=4", "--synthetic", "b=4",
        "--synthetic", "n_val=10", "--synthetic", "n_test=20", "--synthetic", "mu_y=0.5"]


def _create(tmp_path, *extra, command="create"):
    out = tmp_path / "sweep.json"
    assert main(["sweep", command, "--out", str(out), "--out-dir", str(tmp_path / "runs"), "--epochs", "1",
                 *TINY, *extra]) == 0
    return json.loads(out.read_text())


def test_sweep_has_one_entry_per_run(tmp_path):
    sweep = _create(tmp_path, "--levels", "seg,bbox", "--seeds", "0,1", "--location-labels", "5,all")
    assert sweep["sweep_format"] == SWEEP_FORMAT and "format" not in sweep
    keys = [r["key"] for r in sweep["runs"]]
    assert len(keys) == 2 * 2 * 2 and len(set(keys)) == len(keys)
    for run in sweep["runs"]:
        argv = run["argv"]
        assert shlex.split(run["command"]) == argv
        assert argv[:4] == ["python", "-m", "monai.bundle", "run"]
        assert argv[argv.index("--run_name") + 1] == run["key"]
        assert argv[argv.index("--seed") + 1] == str(run["seed"])
        assert argv[argv.index("--level") + 1] == run["level"]
        assert ("--location_labels" in argv) == (run["location_labels"] is not None)
        if run["location_labels"] is not None:
            assert argv[argv.index("--location_labels") + 1] == str(run["location_labels"])
    assert sweep["tracking_uri"].startswith("sqlite:///") and sweep["experiment_name"] == "spatialspec-sweep"
    # run identity: the fingerprint read from an entry's argv is the one the study gives that run
    config = config_from_args(build_parser().parse_args(
        ["study", "--levels", "seg,bbox", "--seeds", "0,1", "--location-labels", "5,all", "--epochs", "1",
         "--out", str(tmp_path / "runs"), "--experiment-name", "spatialspec-sweep", *TINY]))
    expected = {spec.key: expected_fingerprint(config, spec)["digest"] for spec in study_runs(config)}
    assert {r["key"]: entry_fingerprint(r)["digest"] for r in sweep["runs"][:3]} == {
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
    (lambda r: _mutate_argv(r, "--config_file", "/etc/hosts"), "not a config file of the sweep's bundle"),
    (lambda r: _mutate_argv(r, "--output_dir", "$'/tmp/elsewhere'"), "--output_dir must be"),
])
def test_run_refuses_entries_that_are_not_the_sweeps_own_commands(tmp_path, capsys, mutation, message):
    sweep = _create(tmp_path, "--levels", "seg", "--seeds", "0,1", "--tracking-uri", "none")
    mutation(sweep["runs"][1])
    (tmp_path / "sweep.json").write_text(json.dumps(sweep))
    capsys.readouterr()
    assert main(["sweep", "run", str(tmp_path / "sweep.json")]) == 2
    err = capsys.readouterr().err
    assert "runs[1]" in err and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs" / "logs").exists()  # nothing ran


def test_run_rejects_a_file_that_is_not_a_sweep_file(tmp_path, capsys):
    bad = tmp_path / "sweep.json"
    bad.write_text(json.dumps({"runs": "x"}))
    assert main(["sweep", "run", str(bad)]) == 2
    assert "sweep.json is not a spatialspec sweep file" in capsys.readouterr().err


def test_files_of_the_former_sweep_plan_are_read(tmp_path, capsys):
    """A file ``sweep plan`` wrote (version 2 under the key ``format``, the same content) reads as the sweep file it
    is; one of format 1 (no bundles folder) is refused, naming the command that writes it again."""
    sweep = _create(tmp_path, "--levels", "seg", "--seeds", "0,1", "--tracking-uri", "none")
    old = {"format": 2, **{k: v for k, v in sweep.items() if k != "sweep_format"}}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(old))
    assert read_sweep(path) == old
    path.write_text(json.dumps({**old, "format": 1}))
    with pytest.raises(InputError, match="plan format 1.*spatialspec sweep create"):
        read_sweep(path)
    for bad in ({**old, "format": 7}, {k: v for k, v in old.items() if k != "format"}, {**old, "format": "2"}):
        path.write_text(json.dumps(bad))
        with pytest.raises(InputError, match="is not a spatialspec sweep file"):
            read_sweep(path)


def test_sweep_plan_is_a_deprecated_alias_of_create(tmp_path, capsys):
    """``sweep plan`` writes the same sweep file as ``sweep create``, says once on stderr that it is deprecated, and
    is not listed in the help."""
    capsys.readouterr()
    old = _create(tmp_path, "--levels", "seg", "--seeds", "0", command="plan")
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [PLAN_DEPRECATION]
    assert _create(tmp_path, "--levels", "seg", "--seeds", "0") == old
    assert capsys.readouterr().err == ""
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    usage = capsys.readouterr().out
    assert "create" in usage and "plan" not in usage


@pytest.mark.slow
def test_run_skips_finished_and_reports_failures(tmp_path, capsys):
    sweep = _create(tmp_path, "--levels", "seg", "--seeds", "0,1")
    # make the second run fail: an unknown level
    broken = sweep["runs"][1]["argv"]
    broken[broken.index("--level") + 1] = "nonsense"
    (tmp_path / "sweep.json").write_text(json.dumps(sweep))
    assert main(["sweep", "run", str(tmp_path / "sweep.json"), "--jobs", "2"]) == 1
    out, err = capsys.readouterr()
    assert "1 finished, 0 skipped" in out and "1 failed" in out
    assert sweep["runs"][1]["key"] in err and sweep["runs"][0]["key"] not in err

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=sweep["tracking_uri"])
    runs = client.search_runs([client.get_experiment_by_name(sweep["experiment_name"]).experiment_id])
    assert [(r.info.run_name, r.info.status) for r in runs] == [(sweep["runs"][0]["key"], "FINISHED")]

    # again: the finished run is skipped (its MLflow run carries the entry's fingerprint), the failed one is tried
    # again (and fails again)
    tags = runs[0].data.tags
    assert tags["spatialspec.fingerprint"] == entry_fingerprint(sweep["runs"][0])["digest"]
    assert main(["sweep", "run", str(tmp_path / "sweep.json")]) == 1
    out, _ = capsys.readouterr()
    assert "0 finished, 1 skipped" in out and f"{sweep['runs'][0]['key']}: skipped" in out

    # the same run keys with other settings: not skipped, and the bundle refuses the folder of the other run
    other = _create(tmp_path, "--levels", "seg", "--seeds", "0", "--synthetic", "rho=0.9")
    assert other["runs"][0]["key"] == sweep["runs"][0]["key"]
    model = (tmp_path / "runs" / "runs" / sweep["runs"][0]["key"] / "models" / "model.pt").read_bytes()
    assert main(["sweep", "run", str(tmp_path / "sweep.json")]) == 1
    out, err = capsys.readouterr()
    assert "0 finished, 0 skipped" in out and "exit status 2" in err
    log = (tmp_path / "runs" / "logs" / f"{sweep['runs'][0]['key']}.log").read_text()
    assert "error: " in log and "synthetic.rho: 1.0 -> 0.9" in log and "Traceback" not in log
    assert (tmp_path / "runs" / "runs" / sweep["runs"][0]["key"] / "models" / "model.pt").read_bytes() == model
