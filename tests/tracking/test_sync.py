"""BufferedMLFlowHandler against an unreachable server and a store that dies mid-run, and ``sync_buffer`` replaying
the buffer into a SQLite store: every point arrives once, with its step, and replays add nothing."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient
from monai.utils import path_to_sqlite_uri

from spatialspec.tracking import TrackingBufferWarning, read_buffer, sync_buffer
from spatialspec.tracking.sync import BUFFER_UID_TAG, synced_path
from tests.tracking.helpers import EPOCH_METRICS, EPOCHS, ITERATIONS, LOSSES, closed_port, die_after, run_loop


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite store for the module (creating one costs about a second); each test uses its own experiment."""
    return path_to_sqlite_uri(tmp_path_factory.mktemp("store") / "mlruns.db")


def _history(client: MlflowClient, run_id: str, key: str) -> dict[int, float]:
    points = client.get_metric_history(run_id, key)
    steps = [m.step for m in points]
    assert len(steps) == len(set(steps)), f"{key}: a step is logged twice: {sorted(steps)}"
    return {m.step: m.value for m in points}


def _only_run(client: MlflowClient, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def _check_run(client: MlflowClient, run, artifact_name: str | None = None) -> None:
    assert _history(client, run.info.run_id, "train_loss") == pytest.approx(LOSSES)
    for key, values in EPOCH_METRICS.items():
        assert _history(client, run.info.run_id, key) == pytest.approx(values)
    params = run.data.params
    assert params["level"] == "seg" and params["seed"] == "0"
    assert params["max_epochs"] == str(EPOCHS) and params["epoch_length"] == str(ITERATIONS)
    assert run.info.status == "FINISHED"
    if artifact_name:
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == [artifact_name]


def test_unreachable_server_buffers_and_sync_replays_once(tmp_path, store):
    buffer = tmp_path / "mlflow_buffer.jsonl"
    artifact = tmp_path / "config.json"
    artifact.write_text('{"a": 1}')
    with pytest.warns(TrackingBufferWarning, match="mlflow_buffer.jsonl") as caught:
        run_loop(f"http://127.0.0.1:{closed_port()}", buffer, artifact=artifact, experiment="replay")
    assert len([w for w in caught if issubclass(w.category, TrackingBufferWarning)]) == 1
    records = read_buffer(buffer)
    assert [r["kind"] for r in records][:2] == ["start", "params"] and records[-1]["kind"] == "end"
    buffered = [(p["key"], p["step"], p["value"]) for r in records if r["kind"] == "metrics" for p in r["metrics"]]
    assert sorted((k, s) for k, s, _ in buffered) == sorted(
        [("train_loss", i) for i in LOSSES] + [(k, e) for k in EPOCH_METRICS for e in range(1, EPOCHS + 1)])

    uri = store
    report = sync_buffer(buffer, uri)
    assert not buffer.exists() and synced_path(buffer).is_file()
    assert report.metrics_logged == len(buffered) and report.metrics_skipped == 0 and report.artifacts_logged == 1
    client = MlflowClient(uri)
    run = _only_run(client, "replay")
    assert run.info.run_name == "loop" and run.data.tags[BUFFER_UID_TAG] == records[0]["run_uid"]
    _check_run(client, run, "config.json")
    # original timestamps are kept
    first = next(r for r in records if r["kind"] == "metrics")["metrics"][0]
    assert client.get_metric_history(run.info.run_id, first["key"])[0].timestamp == first["timestamp"]

    # replaying the synced copy (or an interrupted sync) finds the run by its uid tag and adds nothing
    again = sync_buffer(synced_path(buffer), uri)
    assert again.metrics_logged == 0 and again.metrics_skipped == len(buffered)
    assert again.params_logged == 0 and again.artifacts_logged == 0 and again.synced_to is None
    _check_run(client, _only_run(client, "replay"), "config.json")


def test_store_dying_mid_run_resumes_the_same_run_without_duplicates(tmp_path, store):
    uri = store
    buffer = tmp_path / "mlflow_buffer.jsonl"
    calls = {"n": 0}

    with pytest.warns(TrackingBufferWarning):
        # one request per logging call (the batched modes: tests/tracking/test_batch.py)
        run_loop(uri, buffer, client_hook=die_after(4, calls), experiment="mid-run", batching="off")
    client = MlflowClient(uri)
    run = _only_run(client, "mid-run")
    before = _history(client, run.info.run_id, "train_loss")
    assert 0 < len(before) < len(LOSSES)  # some points arrived before the store died
    assert run.info.status == "RUNNING"
    records = read_buffer(buffer)
    assert {r["run_id"] for r in records} == {run.info.run_id}

    report = sync_buffer(buffer)  # to the URI the records were meant for
    assert report.runs == {"loop": run.info.run_id}
    _check_run(client, _only_run(client, "mid-run"))
    assert sync_buffer(synced_path(buffer)).metrics_logged == 0


def test_sync_appends_to_an_earlier_synced_buffer_and_rejects_a_missing_one(tmp_path, store):
    uri = store
    buffer = tmp_path / "mlflow_buffer.jsonl"
    dead = f"http://127.0.0.1:{closed_port()}"
    with pytest.warns(TrackingBufferWarning):
        run_loop(dead, buffer, run_name="first", experiment="append")
    first = buffer.read_text()
    sync_buffer(buffer, uri)
    from spatialspec.tracking import reset_tracking_state

    reset_tracking_state()
    with pytest.warns(TrackingBufferWarning):
        run_loop(dead, buffer, run_name="second", experiment="append")
    second = buffer.read_text()
    report = sync_buffer(buffer, uri)
    assert synced_path(buffer).read_text() == first + second
    assert set(report.runs) == {"second"}
    names = sorted(r.info.run_name for r in MlflowClient(uri).search_runs(
        [MlflowClient(uri).get_experiment_by_name("append").experiment_id]))
    assert names == ["first", "second"]
    with pytest.raises(FileNotFoundError):
        sync_buffer(buffer, uri)


def test_study_parent_run_is_buffered_and_synced_with_its_children(tmp_path, store):
    from spatialspec.study.tracking import log_study_run
    from spatialspec.tracking import TrackingBuffer

    uri = store
    buffer = tmp_path / "mlflow_buffer.jsonl"
    dead = f"http://127.0.0.1:{closed_port()}"
    with pytest.warns(TrackingBufferWarning):
        run_loop(dead, buffer, run_name="seg-pixel-s0", experiment="study-exp")
    # the study's test figures of that run, buffered by the runner's TrackingBuffer
    TrackingBuffer(buffer, dead).record("metrics", "study-exp", "seg-pixel-s0",
                                        metrics=[{"key": "test_robust_auroc_mean", "value": 0.75, "timestamp": 5,
                                                  "step": 0}])
    results = tmp_path / "results.json"
    results.write_text(json.dumps([{"run_key": "seg-pixel-s0", "run_id": None}]))
    parent = log_study_run(dead, "study-exp", {"epochs": 2, "synthetic": {"n": 16}},
                           [{"run_key": "seg-pixel-s0", "run_id": None}], [results], buffer_file=buffer)
    assert parent is None
    report = sync_buffer(buffer, uri)
    client = MlflowClient(uri)
    study, child = report.runs["study"], report.runs["seg-pixel-s0"]
    assert client.get_run(child).data.tags["mlflow.parentRunId"] == study
    assert client.get_run(child).data.metrics["test_robust_auroc_mean"] == 0.75
    assert [a.path for a in client.list_artifacts(study)] == ["results.json"]
    assert client.get_run(study).data.params == {"epochs": "2", "synthetic.n": "16"}


def test_sync_command(tmp_path, capsys, store):
    from spatialspec.cli.main import main

    buffer = tmp_path / "mlflow_buffer.jsonl"
    dead = f"http://127.0.0.1:{closed_port()}"
    with pytest.warns(TrackingBufferWarning):
        run_loop(dead, buffer, experiment="cli")
    # the store is still unreachable: exit 1, the buffer is kept
    assert main(["sync", "--buffer", str(buffer)]) == 1
    assert "buffer is kept" in capsys.readouterr().err and buffer.is_file()
    uri = store
    assert main(["sync", "--buffer", str(buffer), "--tracking-uri", uri]) == 0
    n_metrics = len(LOSSES) + sum(len(v) for v in EPOCH_METRICS.values())
    assert f"metrics: {n_metrics} logged, 0 already there" in capsys.readouterr().out
    assert main(["sync", "--buffer", str(buffer), "--tracking-uri", uri]) == 0
    assert "already synced" in capsys.readouterr().out
    _check_run(MlflowClient(uri), _only_run(MlflowClient(uri), "cli"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text("[1, 2]\n{}\n")
    assert main(["sync", "--buffer", str(bad)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
