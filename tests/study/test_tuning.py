"""``spatialspec study --tune``: a bundle setting tuned on the validation split at one seed and budget, the chosen
value used for the study's runs (issue 15, Sec. 4)."""

from __future__ import annotations

import csv
import json
import math

import pytest

from spatialspec.cli.main import main
from spatialspec.errors import InputError
from spatialspec.study import StudyConfig, runner, study_runs
from spatialspec.study.tuning import TuneSettings, choose, mark_chosen, parse_tune, tuned_runs, tuning_runs

TINY = ["--synthetic", "m=20", "--synthetic", "n=16", "--synthetic", "a=4", "--synthetic", "b=4",
        "--synthetic", "n_val=10", "--synthetic", "n_test=20", "--synthetic", "mu_y=0.5"]


def test_parse_tune_reads_yaml_values():
    assert parse_tune(["spl_weight=0.1,1,2.5", "ssl_weight=1e-3,true"]) == {"spl_weight": [0.1, 1, 2.5],
                                                                          "ssl_weight": [1e-3, True]}
    assert parse_tune([]) == {}


@pytest.mark.parametrize("items, message", [
    (["spl_weight"], "must look like KEY=V1,V2"),
    (["network_def#channels=1,2"], "must look like KEY=V1,V2"),
    (["spl_weight=0.5"], "at least two distinct values"),
    (["spl_weight=0.5,0.5"], "at least two distinct values"),
    (["spl_weight=0.1,a/b"], "each value must be"),
    (["spl_weight=0.1,0.2", "spl_weight=1,2"], "given twice"),
])
def test_parse_tune_names_the_bad_option(items, message):
    with pytest.raises(InputError, match=message):
        parse_tune(items)


def test_tuning_runs_only_for_bundles_with_the_key():
    config = StudyConfig(levels=["binary", "seg"], methods=["seg-spl"], seeds=[0, 1, 2], location_labels=[10, None])
    runs = study_runs(config)
    trials = tuning_runs(config, TuneSettings({"spl_weight": [0.1, 1.0, 3.0]}, seed=0, budget=20), runs)
    # one run per value, of seg-spl only, at the tuning seed and budget; each value its own run key (folder)
    assert [t.key for t in trials] == [f"seg-spl-n20-s0-spl_weight={v}" for v in (0.1, 1.0, 3.0)]
    choice = {"seg-spl": {"spl_weight": 3.0}}
    main_runs = tuned_runs(runs, choice)
    assert [r.key for r in main_runs if r.model == "spl"] == [
        f"seg-spl{'' if n is None else f'-n{n}'}-s{s}-spl_weight=3.0" for n in (10, None) for s in (0, 1, 2)]
    assert [r.key for r in main_runs if r.model != "spl"] == [r.key for r in runs if r.model != "spl"]
    # the tuned value reaches the bundle
    assert runner.train_overrides(config, main_runs[-1])["spl_weight"] == 3.0


@pytest.mark.parametrize("tune, extra, message", [
    ("spl_weigth=0.1,1", {}, "did you mean spl_weight"),
    ("spl_weight=0.1,1", {"overrides": {"spl_weight": 0.5}}, "also given as --set"),
    ("epochs=1,2", {}, "the study sets it itself"),
])
def test_bad_keys_fail_before_anything_is_built(tune, extra, message):
    config = StudyConfig(levels=["seg"], methods=["seg-spl"], seeds=[0], **extra)
    with pytest.raises(InputError, match=message):
        tuning_runs(config, TuneSettings(parse_tune([tune])), study_runs(config))


def _record(model, tuned, metric, score="mean"):
    # a test figure that disagrees with the validation one: the choice must not read it
    return {"level": "seg", "model": model, "score": score, "tuned": tuned, "best_key_metric": metric,
            "robust_auroc": -metric}


@pytest.mark.parametrize("select, expected", [("val_loss", 0.5), ("last", 0.5), ("val_robust_auroc", 2.0)])
def test_choice_follows_the_selection_rule(select, expected):
    records = [_record("spl", {"spl_weight": w}, m) for w, m in ((0.1, math.nan), (0.5, 0.2), (2.0, 0.9))]
    records.append(_record("spl", {"spl_weight": 0.1}, 0.0, score="max"))  # another score is not read
    config = StudyConfig(levels=["seg"], seeds=[0], select=select)
    choice = choose(config, records)
    assert choice == {"seg-spl": {"spl_weight": expected}}
    assert [r["chosen"] for r in mark_chosen(records[:3], choice)] == [w == expected for w in (0.1, 0.5, 2.0)]


def test_bad_tune_options_exit_2_before_training(tmp_path, capsys):
    base = ["study", "--levels", "", "--methods", "seg-spl", "--seeds", "0", "--epochs", "1", "--no-progress",
            "--out", str(tmp_path / "s"), *TINY]
    assert main([*base, "--tune", "spl_weight"]) == 2
    assert "--tune 'spl_weight' must look like" in capsys.readouterr().err
    assert main([*base, "--tune", "lambda=1,2"]) == 2
    assert "--tune lambda: no bundle of the study" in capsys.readouterr().err
    assert main([*base, "--tune", "spl_weight=1,2", "--tune-budget", "0"]) == 2
    assert "--location-labels: '0'" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_tuned_study_end_to_end_and_rerun(tmp_path, capsys, monkeypatch):
    out = tmp_path / "study"
    argv = ["study", "--levels", "", "--methods", "seg-spl", "--seeds", "0,1", "--epochs", "1",
            "--location-labels", "8", "--tune", "spl_weight=0.1,3", "--tune-budget", "8", "--bootstrap", "0",
            "--no-progress", "--out", str(out), *TINY]
    trained = []
    train = runner.run_training
    monkeypatch.setattr(runner, "run_training", lambda config, spec: trained.append(spec.key) or train(config, spec))
    assert main(argv) == 0
    trials = json.loads((out / "tuning.json").read_text())
    assert sorted(t["run_key"] for t in trials) == ["seg-spl-n8-s0-spl_weight=0.1", "seg-spl-n8-s0-spl_weight=3"]
    # the chosen value: the smallest validation loss of the tuning runs (--select val_loss), from their records
    best = min(trials, key=lambda t: t["best_key_metric"])
    assert {t["key_metric"] for t in trials} == {"val_loss"}
    assert best["best_key_metric"] != max(t["best_key_metric"] for t in trials)
    chosen = best["tuned"]["spl_weight"]
    assert [t["chosen"] for t in trials] == [t is best for t in trials]
    study = json.loads((out / "study.json").read_text())
    assert study["tune"]["choice"] == {"seg-spl": {"spl_weight": chosen}}
    assert study["tune"]["grid"] == {"spl_weight": [0.1, 3]} and study["tune"]["budget"] == 8
    # the study's runs: the chosen value only; the tuning run at seed 0 is reused, seed 1 trains
    records = json.loads((out / "results.json").read_text())
    assert [r["run_key"] for r in records] == [f"seg-spl-n8-s{s}-spl_weight={chosen}" for s in (0, 1)]
    assert all(r["tuned"] == {"spl_weight": chosen} for r in records)
    assert trained == [t["run_key"] for t in trials] + [f"seg-spl-n8-s1-spl_weight={chosen}"]
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["n_seeds"] == "2"

    # the MLflow parent run holds the grid and the choice
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{out / 'mlruns.db'}")
    experiment = client.get_experiment_by_name("spatialspec-study").experiment_id
    params = client.search_runs([experiment], "attributes.run_name = 'study'")[0].data.params
    assert params["tune.choice.seg-spl.spl_weight"] == str(chosen)
    assert params["tune.grid.spl_weight"] == "[0.1, 3]"

    # a rerun reuses every finished run; a wider grid trains only the new value
    trained.clear()
    assert main(argv) == 0
    assert trained == []
    assert json.loads((out / "results.json").read_text()) == records
    wider = [a if a != "spl_weight=0.1,3" else "spl_weight=0.1,3,0.01" for a in argv]
    assert main(wider) == 0
    new = json.loads((out / "study.json").read_text())["tune"]["choice"]["seg-spl"]["spl_weight"]
    assert trained[0] == "seg-spl-n8-s0-spl_weight=0.01"
    assert trained[1:] == ([] if new == chosen else [f"seg-spl-n8-s1-spl_weight={new}"])
    capsys.readouterr()


def test_each_bundle_tunes_the_keys_it_has_on_the_product_of_their_grids():
    config = StudyConfig(levels=["binary"], methods=["seg-spl", "seg-ssl"], seeds=[0, 1])
    grid = {"spl_weight": [0.1, 1.0], "ssl_weight": [0.03, 0.3], "learning_rate": [0.001, 0.01]}
    trials = tuning_runs(config, TuneSettings(grid, seed=1, budget=None), study_runs(config))
    by_model: dict[str, list] = {}
    for trial in trials:
        by_model.setdefault(trial.model, []).append(dict(trial.tuned))
    # the binary level trains on all samples with only the shared key; each method with its own weight as well
    assert by_model["pixel"] == [{"learning_rate": v} for v in (0.001, 0.01)]
    # the product over the keys in name order, so that a run's key does not depend on the order of the --tune options
    assert by_model["spl"] == [{"learning_rate": v, "spl_weight": w} for v in (0.001, 0.01) for w in (0.1, 1.0)]
    assert by_model["ssl"] == [{"learning_rate": v, "ssl_weight": w} for v in (0.001, 0.01) for w in (0.03, 0.3)]
    assert trials[-1].key == "seg-ssl-s1-learning_rate=0.01-ssl_weight=0.3"
    assert {(t.seed, t.location_labels) for t in trials} == {(1, None)}
