"""One model-selection rule for every run of a study, and convergence checked on every run (--select,
--until-converged, --patience, --max-epochs)."""

from __future__ import annotations

import json

import pytest

from spatialspec.cli.main import main
from spatialspec.study import StudyConfig, study_runs
from spatialspec.study.report import convergence_warning
from spatialspec.study.runner import train_overrides

TINY = ["--synthetic", "m=20", "--synthetic", "n=16", "--synthetic", "a=4", "--synthetic", "b=4",
        "--synthetic", "n_val=10", "--synthetic", "n_test=20", "--synthetic", "mu_y=0.5"]


@pytest.mark.parametrize("kwargs, message", [({"select": "val_mean_dice"}, "select"), ({"patience": 0}, "patience"),
                                             ({"max_epochs": 0}, "max_epochs"), ({"patience": True}, "patience")])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StudyConfig(**kwargs)


def _overrides(config: StudyConfig) -> dict[str, dict]:
    return {spec.key: train_overrides(config, spec) for spec in study_runs(config)}


def test_every_run_gets_the_rule_and_the_paper_recipe_by_default():
    config = StudyConfig(levels=["binary", "seg"], methods=["jtt", "george", "seg-ssl"], seeds=[0])
    for overrides in _overrides(config).values():
        assert (overrides["select"], overrides["until_converged"], overrides["patience"]) == ("val_loss", False, 20)
        assert overrides["epochs"] == 50 and "erm_epochs" not in overrides and "initial_epochs" not in overrides


def test_until_converged_trains_to_max_epochs_with_first_stages_pinned():
    config = StudyConfig(levels=["seg"], methods=["jtt", "george", "seg-ssl"], seeds=[0], epochs=30,
                         until_converged=True, patience=5, max_epochs=200, select="val_worst_group_auroc",
                         overrides={"learning_rate": 0.01})
    overrides = _overrides(config)
    for run in overrides.values():
        assert run["epochs"] == 200 and run["until_converged"] is True and run["patience"] == 5
        assert run["select"] == "val_worst_group_auroc" and run["learning_rate"] == 0.01
    # the ERM model of JTT and GEORGE and Seg-SSL's initial network train --epochs, not --max-epochs
    assert overrides["binary-jtt-s0"]["erm_epochs"] == 30 and overrides["binary-george-s0"]["erm_epochs"] == 30
    assert overrides["seg-ssl-s0"]["initial_epochs"] == 30
    assert "erm_epochs" not in overrides["seg-pixel-s0"] and "initial_epochs" not in overrides["seg-pixel-s0"]
    # a --set of the first stage's epochs still wins
    pinned = StudyConfig(levels=[], methods=["jtt"], seeds=[0], until_converged=True, overrides={"erm_epochs": 7})
    assert _overrides(pinned)["binary-jtt-s0"]["erm_epochs"] == 7


def test_convergence_warning_names_the_runs():
    records = [{"run_key": "seg-pixel-s0", "converged": True}, {"run_key": "binary-jtt-s0", "converged": False},
               {"run_key": "binary-jtt-s0", "converged": False}, {"run_key": "seg-pixel-s1", "converged": False}]
    line = convergence_warning(records, patience=20)
    assert line == ("warning: 2 of 3 runs did not converge (validation loss still improving within the last 20 "
                    "epochs): binary-jtt-s0, seg-pixel-s1; train longer (--epochs) or with --until-converged")
    assert convergence_warning(records[:1], patience=20) is None


def test_sweep_commands_carry_the_options(tmp_path):
    out = tmp_path / "sweep.json"
    assert main(["sweep", "create", "--out", str(out), "--out-dir", str(tmp_path / "runs"), "--levels", "jtt,seg",
                 "--seeds", "0", "--epochs", "5", "--select", "last", "--until-converged", "--patience", "3",
                 "--max-epochs", "40", *TINY]) == 0
    runs = {r["key"]: r["argv"] for r in json.loads(out.read_text())["runs"]}

    def value(argv, name):
        return argv[argv.index(f"--{name}") + 1]

    for argv in runs.values():
        assert (value(argv, "select"), value(argv, "until_converged"), value(argv, "patience"),
                value(argv, "epochs")) == ("last", "True", "3", "40")
    assert value(runs["binary-jtt-s0"], "erm_epochs") == "5" and "--erm_epochs" not in runs["seg-pixel-s0"]
    # without the options: the paper recipe, the default rule
    assert main(["sweep", "create", "--out", str(out), "--out-dir", str(tmp_path / "runs"), "--levels", "seg",
                 "--seeds", "0", "--epochs", "5", *TINY]) == 0
    argv = json.loads(out.read_text())["runs"][0]["argv"]
    assert (value(argv, "select"), value(argv, "until_converged"), value(argv, "epochs")) == ("val_loss", "False", "5")


@pytest.mark.parametrize("argv, message", [(["--select", "best"], "--select"), (["--patience", "0"], "--patience"),
                                           (["--max-epochs", "-3"], "--max-epochs")])
def test_bad_options_exit_2(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["study", "--out", str(tmp_path / "s"), *argv])
    assert info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_study_records_the_rule_and_flags_non_converged_runs(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["study", "--levels", "seg", "--seeds", "0", "--epochs", "2", "--select", "last", "--tracking-uri",
                 "none", "--bootstrap", "0", "--no-progress", "--out", str(out), *TINY]) == 0
    (record,) = json.loads((out / "results.json").read_text())
    assert (record["select"], record["key_metric"], record["best_epoch"]) == ("last", "val_loss", 2)
    assert record["converged"] is False and record["epochs_trained"] == 2
    assert record["val_loss_best_epoch"] in (1, 2)
    printed = capsys.readouterr().out
    assert ("warning: 1 of 1 runs did not converge (validation loss still improving within the last 20 epochs): "
            "seg-pixel-s0") in printed
