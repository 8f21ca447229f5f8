"""`spatialspec report --tracking-uri URI --experiment NAME`: a tiny study logged to a SQLite MLflow store by the
study's own tracking code (each run's test figures, the parent run with the result files), read back into the same
report as from the folder; and, without a parent run, a report rebuilt from the training runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spatialspec.cli.main import main
from spatialspec.report import read_summary_csv
from spatialspec.study.report import row_label
from spatialspec.tracking import reset_tracking_state
from tests.report.helpers import make_study
from tests.report.test_report_html import parse


def _log_study(study: Path, uri: str, experiment: str, parent: bool) -> dict[str, str]:
    """Log the study folder's runs as `spatialspec study` does (a run per run key with its bundle parameters, then
    the test figures through ``log_test_figures``) and, with ``parent``, the parent run; the run ids by run key."""
    from mlflow.tracking import MlflowClient

    from spatialspec.study.runner import StudyConfig
    from spatialspec.study.tracking import log_study_run, log_test_figures
    from spatialspec.tracking.store import create_sqlite_store

    create_sqlite_store(uri)
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment(experiment)
    config = StudyConfig(out_dir=str(study), tracking_uri=uri, experiment_name=experiment, seeds=[0])
    records = json.loads((study / "results.json").read_text())
    ids = {}
    for key in dict.fromkeys(r["run_key"] for r in records):
        mine = [r for r in records if r["run_key"] == key]
        run = client.create_run(experiment_id, run_name=key)
        for name in ("level", "seed", "location_labels", "epochs", "select"):
            client.log_param(run.info.run_id, name, mine[0][name] if mine[0][name] is not None else "none")
        client.log_param(run.info.run_id, "bundle", "segmentation")
        client.set_terminated(run.info.run_id)
        ids[key] = log_test_figures(config, key, mine)
    for r in records:
        r["run_id"] = ids[r["run_key"]]
    (study / "results.json").write_text(json.dumps(records))
    if parent:
        log_study_run(uri, experiment, json.loads((study / "study.json").read_text()), records,
                      [study / name for name in ("results.json", "summary.csv", "study.json")])
    return ids


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_mlflow")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))  # the empty-store template, not the user's cache
        reset_tracking_state()
        study = make_study(root, saliency=False)
        uri = f"sqlite:///{root / 'mlruns.db'}"
        # the same runs twice: without a parent run, then with one (results.json keeps the second's run ids)
        ids = {name: _log_study(study, uri, name, parent=name == "with-parent")
               for name in ("runs-only", "with-parent")}
        yield study, uri, ids, root
        reset_tracking_state()


def test_report_from_mlflow_parent_run(logged, capsys):
    study, uri, ids, root = logged
    out = root / "from_mlflow.html"
    assert main(["report", "--tracking-uri", uri, "--experiment", "with-parent", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    text = out.read_text()
    page = parse(text)
    rows = read_summary_csv(study / "summary.csv")
    table = page.tables["results"]
    assert [(line[0], line[1]) for line in table] == [(row_label(r), r["score"]) for r in rows]
    assert [line[4] for line in table] == [f"[{r['robust_auroc_ci_low']:.3f}, {r['robust_auroc_ci_high']:.3f}]"
                                           for r in rows]
    assert {line[0]: line[-1] for line in page.tables["runs"]} == ids["with-parent"]  # each run's MLflow run id
    assert "parent run" in text and "mu_a" in text  # the parent's study.json: the data model


def test_report_from_mlflow_training_runs_only(logged):
    study, uri, ids, root = logged
    out = root / "runs_only.html"
    assert main(["report", "--tracking-uri", uri, "--experiment", "runs-only", "--out", str(out)]) == 0
    text = out.read_text()
    page = parse(text)
    records = json.loads((study / "results.json").read_text())
    expected = list(dict.fromkeys((row_label(r), r["score"]) for r in records))
    assert sorted((line[0], line[1]) for line in page.tables["results"]) == sorted(expected)
    seg = next(line for line in page.tables["results"] if line[:2] == ["seg n=10", "mean"])
    members = [r["robust_auroc"] for r in records if row_label(r) == "seg n=10" and r["score"] == "mean"]
    assert seg[3].startswith(f"{sum(members) / len(members):.3f} ± ")
    assert {line[4] for line in page.tables["results"]} == {"-"} and "no intervals" in text
    assert {line[0]: line[-1] for line in page.tables["runs"]} == ids["runs-only"]


def test_unknown_experiment_is_named(logged, capsys):
    _, uri, _, root = logged
    assert main(["report", "--tracking-uri", uri, "--experiment", "nope", "--out", str(root / "x.html")]) == 2
    assert "'nope'" in capsys.readouterr().err
