"""Against a real ``mlflow server`` (SQLite backend, artifacts served from a local folder): the segmentation bundle
logs params, per-epoch robust and overall AUROC and its executed config; a run whose server is unreachable completes,
names its buffer, and ``spatialspec sync`` pushes it (twice adds nothing); ``spatialspec study`` logs its parent run
with robust_auroc.png.

The server is started with ``--artifacts-destination DIR`` (artifact serving is on by default): experiments get
``mlflow-artifacts:/`` locations and the client uploads through the server's HTTP API, so artifacts reach the server
from any client, not only from one that can write to the server's folder (as ``--default-artifact-root DIR`` would
need).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from spatialspec import registry
from tests.ports import free_port
from tests.tracking.helpers import EPOCH_METRICS, LOSSES, LR, closed_port, metric_history, run_loop

REPO_ROOT = Path(__file__).resolve().parents[2]
# the segmentation level's configs, as python-fire reads a list for --config_file
CONFIGS = repr([str(f) for f in registry.config_files("seg", bundles_dir=REPO_ROOT / "bundles")])
META = registry.meta_file("seg", REPO_ROOT / "bundles")
SETTINGS = REPO_ROOT / "bundles" / "tracking_mlflow.json"
TINY = {"m": 20, "n": 16, "a": 4, "b": 4, "n_val": 10, "n_test": 20, "mu_y": 0.5}
TIMEOUT = 300
SERVER_START_TIMEOUT = 90


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _run(args: list[str], log: Path) -> tuple[int, str, float]:
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=_env(), stdout=out,
                              stderr=subprocess.STDOUT, timeout=TIMEOUT)
    return proc.returncode, log.read_text(errors="replace"), time.perf_counter() - started


def _bundle(out: Path, uri: str, run_name: str, log: Path) -> tuple[int, str, float]:
    return _run(["-m", "monai.bundle", "run", "--config_file", CONFIGS, "--meta_file", str(META), "--epochs", "2",
                 "--output_dir", "$" + repr(str(out)), "--synthetic", repr(TINY), "--tracking", str(SETTINGS),
                 "--tracking_uri", uri, "--experiment_name", "server-test", "--run_name", run_name], log)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    log = open(root / "server.log", "w")
    proc = subprocess.Popen([str(mlflow), "server", "--backend-store-uri", f"sqlite:///{root / 'mlruns.db'}",
                             "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"], cwd=root, env=_env(), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start:\n{(root / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield uri, root
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and its worker, started in their own session
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _run_named(client, experiment: str, name: str):
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment!r} not on the server"
    runs = client.search_runs([exp.experiment_id], filter_string=f"attributes.run_name = '{name}'")
    assert len(runs) == 1, f"{len(runs)} runs named {name!r}"
    return runs[0]


def _steps(client, run_id: str, key: str) -> dict[int, float]:
    points = client.get_metric_history(run_id, key)
    return {m.step: m.value for m in points}


@pytest.mark.slow
def test_bundle_logs_to_server(server, tmp_path):
    uri, _ = server
    out = tmp_path / "out"
    rc, output, _ = _bundle(out, uri, "online", tmp_path / "train.log")
    assert rc == 0, output[-5000:]
    assert not (out / "mlflow_buffer.jsonl").exists(), output[-3000:]
    client = _client(uri)
    run = _run_named(client, "server-test", "online")
    params = run.data.params
    assert params["level"] == "seg" and params["seed"] == "0" and params["epochs"] == "2"
    assert params["synthetic.n"] == str(TINY["n"]) and params["max_epochs"] == "2"
    for key in ("val_robust_auroc", "val_overall_auroc"):
        history = client.get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in history) == [1, 2], key
        assert all(0.0 <= m.value <= 1.0 for m in history), key
    # the executed config arrived, byte for byte
    local = sorted(out.glob("config_*.json"))
    assert len(local) == 1
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == [local[0].name]
    fetched = client.download_artifacts(run.info.run_id, local[0].name, str(tmp_path))
    assert json.loads(Path(fetched).read_text()) == json.loads(local[0].read_text())


@pytest.mark.slow
def test_unreachable_server_buffers_then_sync_pushes(server, tmp_path):
    uri, _ = server
    out = tmp_path / "out"
    rc, output, wall = _bundle(out, f"http://127.0.0.1:{closed_port()}", "offline", tmp_path / "train.log")
    assert rc == 0, output[-5000:]
    buffer = out / "mlflow_buffer.jsonl"
    assert buffer.is_file() and str(buffer) in output, output[-3000:]
    assert output.count("MLflow records are buffered in") == 1, output[-3000:]
    from spatialspec.tracking import read_buffer

    buffered = {}
    for record in read_buffer(buffer):
        for point in record.get("metrics", []):
            buffered.setdefault(point["key"], {})[point["step"]] = point["value"]
    assert sorted(buffered["val_robust_auroc"]) == [1, 2]

    sync = ["-m", "spatialspec", "sync", "--buffer", str(buffer), "--tracking-uri", uri]
    rc, output, _ = _run(sync, tmp_path / "sync.log")
    assert rc == 0, output
    assert not buffer.exists() and Path(f"{buffer}.synced").is_file()
    client = _client(uri)
    run = _run_named(client, "server-test", "offline")
    assert run.info.status == "FINISHED" and run.data.params["level"] == "seg"
    for key in ("val_robust_auroc", "val_overall_auroc", "train_loss"):
        assert _steps(client, run.info.run_id, key) == pytest.approx(buffered[key]), key
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == [p.name for p in out.glob("config_*.json")]

    # twice: the buffer is already synced; replaying its .synced copy adds nothing either
    rc, output, _ = _run(sync, tmp_path / "sync2.log")
    assert rc == 0 and "already synced" in output, output
    rc, output, _ = _run([*sync[:-3], f"{buffer}.synced", "--tracking-uri", uri], tmp_path / "sync3.log")
    assert rc == 0 and "metrics: 0 logged" in output, output
    run = _run_named(client, "server-test", "offline")
    for key in ("val_robust_auroc", "val_overall_auroc", "train_loss"):
        history = client.get_metric_history(run.info.run_id, key)
        assert len(history) == len(buffered[key]), key


@pytest.mark.slow
@pytest.mark.parametrize("batching", ["async", "epoch"])
def test_batched_history_is_the_unbatched_one_on_server(server, tmp_path, batching):
    """Over HTTP too, a batched run leaves the metric history MONAI's one-request-per-call path leaves: the same keys,
    steps and values, every point once, all written before the run ends."""
    uri, _ = server
    runs = {}
    for mode in ("off", batching):
        handler = run_loop(uri, tmp_path / "b.jsonl", run_name=f"{mode}-vs-{batching}", experiment="batching",
                           batching=mode, optimizer=True)
        runs[mode] = handler.client.search_runs(
            [handler.client.get_experiment_by_name("batching").experiment_id],
            filter_string=f"attributes.run_name = '{mode}-vs-{batching}'")[0]
    assert not (tmp_path / "b.jsonl").exists()
    client = _client(uri)
    reference = metric_history(client, runs["off"].info.run_id)
    assert reference == {"lr_group_0": [(i, LR) for i in LOSSES], "train_loss": sorted(LOSSES.items()),
                         **{key: sorted(values.items()) for key, values in EPOCH_METRICS.items()}}
    assert metric_history(client, runs[batching].info.run_id) == reference
    assert client.get_run(runs[batching].info.run_id).info.status == "FINISHED"


@pytest.mark.slow
def test_study_logs_parent_run_to_server(server, tmp_path):
    uri, _ = server
    out = tmp_path / "study"
    synthetic = [arg for key, value in TINY.items() for arg in ("--synthetic", f"{key}={value}")]
    rc, output, _ = _run(["-m", "spatialspec", "study", "--levels", "seg", "--seeds", "0", "--epochs", "1",
                          *synthetic, "--out", str(out), "--tracking-uri", uri, "--experiment-name", "study-test",
                          "--no-progress"], tmp_path / "study.log")
    assert rc == 0, output[-5000:]
    assert not (out / "mlflow_buffer.jsonl").exists(), output[-3000:]
    client = _client(uri)
    study = _run_named(client, "study-test", "study")
    assert {a.path for a in client.list_artifacts(study.info.run_id)} >= {"robust_auroc.png", "results.json",
                                                                          "summary.csv"}
    png = Path(client.download_artifacts(study.info.run_id, "robust_auroc.png", str(tmp_path)))
    assert png.read_bytes() == (out / "robust_auroc.png").read_bytes()
    child = _run_named(client, "study-test", "seg-pixel-s0")
    assert child.data.tags["mlflow.parentRunId"] == study.info.run_id
    results = json.loads((out / "results.json").read_text())
    assert results[0]["run_id"] == child.info.run_id
    assert child.data.metrics["test_robust_auroc_mean"] == pytest.approx(results[0]["robust_auroc"])
    assert sorted(_steps(client, child.info.run_id, "val_robust_auroc")) == [1]
