"""The study evaluates every image score in one test pass (spatialspec.study.evaluation, issue 17): the figures,
predictions and metrics.csv are exactly those of one evaluate.yaml pass per score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import spatialspec.study.evaluation as evaluation
from spatialspec.data import SyntheticParams
from spatialspec.study import StudyConfig, run_study, study_runs
from spatialspec.study.runner import train_overrides
from spatialspec.study.workflow import build_workflow

SCORES = ["mean", "max", "topk:5"]
TINY = SyntheticParams(m=24, n=16, a=4, b=4, n_val=12, n_test=40, mu_y=0.5, rho=0.8)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluation") / "study"
    config = StudyConfig(levels=["seg"], seeds=[0], scores=SCORES, epochs=2, synthetic=TINY, out_dir=str(out),
                         tracking_uri="none", bootstrap=20)
    passes = []
    original = evaluation.evaluate_scores

    def counting(make_workflow, scores):
        def counted(score):
            passes.append(score)
            return make_workflow(score)
        return original(counted, scores)

    mp = pytest.MonkeyPatch()
    mp.setattr(evaluation, "evaluate_scores", counting)
    mp.setattr("spatialspec.study.runner.evaluate_scores", counting)
    try:
        records = run_study(config)
    finally:
        mp.undo()
    return config, records, passes


def _separate_pass(config, score):
    """What the study did before issue 17: one evaluate.yaml pass for the score alone."""
    spec = study_runs(config)[0]
    result = evaluation.evaluate_scores(
        lambda s: build_workflow(spec.config_files("evaluate"), spec.meta_file(), None, score=s,
                            **train_overrides(config, spec)), [score])
    return result[score]


@pytest.mark.slow
def test_one_test_pass_serves_every_score(study):
    _, records, passes = study
    assert passes == [SCORES[-1]]  # the last score's workflow, the others read out of its probability maps
    assert [r["score"] for r in records] == SCORES


@pytest.mark.slow
@pytest.mark.parametrize("score", SCORES)
def test_single_pass_equals_a_pass_per_score(study, score):
    config, records, _ = study
    record = next(r for r in records if r["score"] == score)
    alone = _separate_pass(config, score)
    for name, value in alone.figures.items():
        assert record[name] == value or (np.isnan(record[name]) and np.isnan(value)), name
    lines = (Path(config.out_dir) / record["predictions"]).read_text().splitlines()[1:]
    assert [line.split(",")[0] for line in lines] == alone.ids
    assert [float(line.split(",")[3]) for line in lines] == [float(v) for v in alone.y_pred]


@pytest.mark.slow
def test_each_score_is_read_out_on_its_own(study):
    config, records, _ = study
    files = {r["score"]: (Path(config.out_dir) / r["predictions"]).read_text() for r in records}
    assert len(set(files.values())) == len(SCORES)


@pytest.mark.slow
def test_metrics_csv_is_what_a_pass_of_the_last_score_writes(study):
    config, _, _ = study
    metrics_csv = Path(config.out_dir) / "runs" / study_runs(config)[0].key / "metrics.csv"
    written = metrics_csv.read_text()
    _separate_pass(config, SCORES[-1])  # rewrites the file
    assert metrics_csv.read_text() == written


@pytest.mark.slow
def test_without_readouts_every_score_gets_its_own_pass(study, monkeypatch):
    """A workflow whose postprocessing does not end with the one ImageScored: a pass per score, same figures."""
    config, records, _ = study
    spec = study_runs(config)[0]
    passes = []

    def make(score):
        passes.append(score)
        return build_workflow(spec.config_files("evaluate"), spec.meta_file(), None, score=score,
                         **train_overrides(config, spec))

    monkeypatch.setattr(evaluation, "_attach_readouts", lambda workflow, engine, scores: {})
    results = evaluation.evaluate_scores(make, SCORES)
    assert passes == SCORES[::-1]
    for record in records:
        assert results[record["score"]].figures == {name: record[name] for name in results[record["score"]].figures}
