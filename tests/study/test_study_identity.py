"""A study reuses or resumes a run only when its fingerprint is equal; other settings in the same --out are refused
before anything trains (issue 13, run identity)."""

from __future__ import annotations

import json

import pytest

import spatialspec.study.runner as runner
from spatialspec.cli.main import main

TINY = ["--synthetic", "m=20", "--synthetic", "n=16", "--synthetic", "a=4", "--synthetic", "b=4",
        "--synthetic", "n_val=10", "--synthetic", "n_test=20", "--synthetic", "mu_y=0.5"]


def _study(out, *extra):
    return main(["study", "--levels", "seg", "--seeds", "0,1", "--epochs", "1", "--out", str(out), "--no-progress",
                 "--tracking-uri", "none", "--bootstrap", "0", *TINY, *extra])


def _count_training(monkeypatch) -> list[str]:
    trained: list[str] = []
    original = runner.run_training

    def counting(config, spec):
        trained.append(spec.key)
        return original(config, spec)

    monkeypatch.setattr(runner, "run_training", counting)
    return trained


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("identity") / "study"
    assert _study(out) == 0
    return out


def _snapshot(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_records_carry_the_runs_fingerprint(finished_study):
    records = json.loads((finished_study / "results.json").read_text())
    for record in records:
        marker = json.loads((finished_study / "runs" / record["run_key"] / "models" / "fingerprint.json").read_text())
        assert record["fingerprint"] == marker["digest"]
    assert records[0]["fingerprint"] != records[1]["fingerprint"]  # seeds 0 and 1


@pytest.mark.slow
def test_same_study_again_reuses_every_run(finished_study, monkeypatch, capsys):
    before = json.loads((finished_study / "results.json").read_text())
    trained = _count_training(monkeypatch)
    assert _study(finished_study) == 0
    assert trained == []
    after = json.loads((finished_study / "results.json").read_text())
    assert [r["fingerprint"] for r in after] == [r["fingerprint"] for r in before]


@pytest.mark.slow
def test_other_settings_are_refused_and_nothing_is_touched(finished_study, monkeypatch, capsys):
    before = _snapshot(finished_study)
    trained = _count_training(monkeypatch)
    capsys.readouterr()
    assert _study(finished_study, "--synthetic", "rho=0.9") == 2
    err = capsys.readouterr().err
    assert trained == [] and _snapshot(finished_study) == before
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "synthetic.rho: 1.0 -> 0.9" in err and "seg-pixel-s0" in err and "--fresh" in err
    # another learning rate through --set: the optimizer's field is named
    assert _study(finished_study, "--set", "learning_rate=0.01") == 2
    assert "learning_rate: 0.001 -> 0.01" in capsys.readouterr().err


@pytest.mark.slow
def test_interrupted_study_trains_only_what_is_missing(tmp_path, monkeypatch):
    out = tmp_path / "study"
    assert _study(out) == 0
    records = json.loads((out / "results.json").read_text())
    # the study was killed after seed 0: its results file holds seed 0 only
    (out / "results.json").write_text(json.dumps([r for r in records if r["seed"] == 0]))
    trained = _count_training(monkeypatch)
    assert _study(out) == 0
    assert trained == ["seg-pixel-s1"]
    again = json.loads((out / "results.json").read_text())
    # seed 1 resumed from its finished checkpoint: the same model, the same test figures
    assert [r["robust_auroc"] for r in again] == pytest.approx([r["robust_auroc"] for r in records], nan_ok=True)
    assert [r["fingerprint"] for r in again] == [r["fingerprint"] for r in records]


@pytest.mark.slow
def test_fresh_retrains_with_the_new_settings(tmp_path, monkeypatch):
    out = tmp_path / "study"
    assert _study(out) == 0
    old = json.loads((out / "results.json").read_text())
    trained = _count_training(monkeypatch)
    assert _study(out, "--synthetic", "rho=0.9", "--fresh") == 0
    assert trained == ["seg-pixel-s0", "seg-pixel-s1"]
    new = json.loads((out / "results.json").read_text())
    assert {r["fingerprint"] for r in new}.isdisjoint(r["fingerprint"] for r in old)
    assert json.loads((out / "study.json").read_text())["synthetic"]["rho"] == 0.9
    # and the new settings are now the folder's: without --fresh they are reused
    trained.clear()
    assert _study(out, "--synthetic", "rho=0.9") == 0 and trained == []


def test_unreadable_checkpoint_in_out_is_named_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "study"
    checkpoint = out / "runs" / "seg-pixel-s0" / "resume" / "latest.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_text("not a checkpoint")
    assert _study(out) == 2
    err = capsys.readouterr().err
    assert "run seg-pixel-s0" in err and "not a file written by torch.save" in err and "--fresh" in err
    assert sorted(p.name for p in out.iterdir()) == ["runs"]  # nothing written
