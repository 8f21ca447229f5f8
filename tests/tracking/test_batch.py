"""Batched metric logging of BufferedMLFlowHandler (spatialspec.tracking.batch) against a SQLite store: the metric
history a run leaves is the one MONAI's one-request-per-call path leaves (same keys, steps, values), in one request
per epoch, written before the run ends; a store dying mid-run buffers what did not arrive; a SIGKILL loses at most
the unfinished epoch; a new SQLite store is created fast with MLflow's own schema."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.tracking import MlflowClient
from monai.utils import path_to_sqlite_uri

from spatialspec.tracking import BufferedMLFlowHandler, TrackingBufferWarning, read_buffer, sync_buffer
from spatialspec.tracking.batch import MetricBatcher
from spatialspec.tracking.store import create_sqlite_store, sqlite_path, template_path
from tests.tracking.helpers import (
    EPOCH_METRICS,
    EPOCHS,
    ITERATIONS,
    LOSSES,
    LR,
    die_after,
    metric_history,
    run_loop,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
# every point the loop logs with an optimizer: the loss and learning rate per iteration, the AUROCs per epoch
EXPECTED = {"lr_group_0": [(i, LR) for i in LOSSES], "train_loss": sorted(LOSSES.items()),
            **{key: sorted(values.items()) for key, values in EPOCH_METRICS.items()}}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return path_to_sqlite_uri(tmp_path_factory.mktemp("store") / "mlruns.db")


def _run_id(client: MlflowClient, experiment: str, name: str = "loop") -> str:
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], filter_string=f"attributes.run_name = '{name}'")
    assert len(runs) == 1
    return runs[0].info.run_id


def _count_batches(handler: BufferedMLFlowHandler, seen: list) -> None:
    """Record every log_batch of ``handler``'s client that carries metrics (the thread and the steps sent)."""
    real = handler.client.log_batch

    def log_batch(run_id, metrics=(), *args, **kwargs):
        result = real(run_id, metrics, *args, **kwargs)
        if metrics:
            seen.append((threading.current_thread() is threading.main_thread(), len(metrics)))
        return result

    handler.client.log_batch = log_batch


@pytest.mark.parametrize("batching", ["async", "epoch"])
def test_batched_history_is_the_unbatched_one(tmp_path, store, batching):
    unbatched, batched = [], []
    run_loop(store, tmp_path / "b.jsonl", experiment=f"off-{batching}", batching="off", optimizer=True,
             client_hook=lambda h: _count_batches(h, unbatched))
    run_loop(store, tmp_path / "b.jsonl", experiment=f"on-{batching}", batching=batching, optimizer=True,
             client_hook=lambda h: _count_batches(h, batched))
    client = MlflowClient(store)
    reference = metric_history(client, _run_id(client, f"off-{batching}"))
    assert reference == EXPECTED  # the unbatched path logs every point once
    assert metric_history(client, _run_id(client, f"on-{batching}")) == reference
    assert not (tmp_path / "b.jsonl").exists()
    # MONAI's path: two requests an iteration (loss, learning rate) and one an epoch; batched: one an epoch, written
    # by the batcher's thread (async: the writer may take two epochs at once, this loop being fast)
    assert len(unbatched) == 2 * ITERATIONS * EPOCHS + EPOCHS
    per_epoch = 2 * ITERATIONS + len(EPOCH_METRICS)
    assert not any(main for main, _ in batched) and sum(n for _, n in batched) == per_epoch * EPOCHS
    if batching == "epoch":
        assert [n for _, n in batched] == [per_epoch] * EPOCHS


def _train_and_validate(handler_class, store: str, experiment: str, client_hook=None, **kwargs) -> None:
    """A trainer (loss and learning rate per iteration) and a validator run at each of its epoch ends (AUROCs per
    epoch), each with its own tracking handler of one run, as the bundles wire them."""
    trainer = Engine(lambda e, batch: LOSSES[e.state.iteration])
    trainer.optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    validator = Engine(lambda e, batch: None)

    @validator.on(Events.EPOCH_COMPLETED)
    def _metrics(e: Engine) -> None:
        e.state.metrics = {k: v[trainer.state.epoch] for k, v in EPOCH_METRICS.items()}

    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: validator.run(range(1)))
    common = dict(tracking_uri=store, experiment_name=experiment, run_name="loop", **kwargs)
    handlers = (handler_class(output_transform=lambda x: x, tag_name="train_loss", close_on_complete=True,
                              experiment_param={"level": "seg", "seed": 0}, **common),
                handler_class(iteration_log=False, global_epoch_transform=lambda _: trainer.state.epoch, **common))
    for handler, engine in zip(handlers, (trainer, validator), strict=True):
        if client_hook is not None:
            client_hook(handler)
        handler.attach(engine)
    trainer.run(range(ITERATIONS), max_epochs=EPOCHS)


@pytest.mark.parametrize("batching", ["async", "epoch"])
def test_trainer_and_validator_log_what_monai_logs_and_end_the_run_last(tmp_path, store, batching):
    """A trainer's and its validator's handlers log to one run through one batcher, one batch an epoch, and the run
    is terminated only after the last point is written, even by a slow store; the run has the params and the metric
    history MONAI's own MLFlowHandler leaves, and the validator, started every epoch, sends no request."""
    from monai.handlers import MLFlowHandler

    _train_and_validate(MLFlowHandler, store, f"monai-{batching}")
    events = []

    def slow_store(handler):
        real_batch, real_end, real_get = handler.client.log_batch, handler.client.set_terminated, handler.client.get_run

        def log_batch(run_id, metrics=(), *args, **kwargs):
            if metrics:
                time.sleep(0.3)  # a slow store: the run must still end after this batch is written
            real_batch(run_id, metrics, *args, **kwargs)
            events.append(("metrics", len(metrics)) if metrics else ("params", len(kwargs.get("params", ()))))

        def set_terminated(*args, **kwargs):
            events.append(("end", 0))
            return real_end(*args, **kwargs)

        def get_run(*args, **kwargs):
            events.append(("get_run", 0))
            return real_get(*args, **kwargs)

        handler.client.log_batch, handler.client.set_terminated, handler.client.get_run = (log_batch, set_terminated,
                                                                                           get_run)

    _train_and_validate(BufferedMLFlowHandler, store, f"batched-{batching}", client_hook=slow_store,
                        buffer_file=tmp_path / "b.jsonl", batching=batching)
    assert not (tmp_path / "b.jsonl").exists()
    per_epoch = 2 * ITERATIONS + len(EPOCH_METRICS)
    # the trainer's params in one request; the validator's first start reads the run MONAI's way (finds it by name);
    # one batch an epoch (async: the writer may take two epochs at once, this loop being fast); the end last
    assert events[0] == ("params", 4) and events[1:2] == [("get_run", 0)] and events[-1] == ("end", 0)
    assert sum(n for kind, n in events if kind == "metrics") == per_epoch * EPOCHS
    assert [kind for kind, _ in events[2:-1]] == ["metrics"] * len(events[2:-1])
    if batching == "epoch":
        assert events[2:] == [("metrics", per_epoch)] * EPOCHS + [("end", 0)]
    client = MlflowClient(store)
    reference, batched = (client.get_run(_run_id(client, f"{kind}-{batching}")) for kind in ("monai", "batched"))
    assert metric_history(client, batched.info.run_id) == metric_history(client, reference.info.run_id) == EXPECTED
    assert batched.data.params == reference.data.params == {"level": "seg", "seed": "0", "max_epochs": str(EPOCHS),
                                                            "epoch_length": str(ITERATIONS)}
    assert batched.info.status == reference.info.status == "FINISHED"


@pytest.mark.parametrize("batching", ["off", "async", "epoch"])
def test_store_dying_mid_run_buffers_what_did_not_arrive(tmp_path, store, batching):
    """The store accepts the run, its params and the first epoch (async: no points, its one write comes when the run
    closes), then refuses every connection: the run finishes, the buffer holds exactly the points the store lacks,
    and sync completes the run."""
    buffer = tmp_path / "mlflow_buffer.jsonl"
    experiment = f"dying-{batching}"
    calls = {"n": 0}
    # the params (experiment_param, max_epochs and epoch_length at once), then one request per logging call or one
    # per epoch; async with a long flush interval writes once, when the run closes, and that request fails
    alive = 1 + (ITERATIONS + 1 if batching == "off" else 1 if batching == "epoch" else 0)

    with pytest.warns(TrackingBufferWarning):
        run_loop(store, buffer, experiment=experiment, batching=batching, client_hook=die_after(alive, calls),
                 flush_interval=3600)
    client = MlflowClient(store)
    run_id = _run_id(client, experiment)
    arrived = metric_history(client, run_id)
    first_epoch = {"train_loss": [(i, LOSSES[i]) for i in range(1, ITERATIONS + 1)],
                   **{key: [(1, values[1])] for key, values in EPOCH_METRICS.items()}}
    if batching == "async":
        first_epoch = {}
    assert arrived == first_epoch
    buffered = sorted((p["key"], p["step"], p["value"]) for r in read_buffer(buffer) if r["kind"] == "metrics"
                      for p in r["metrics"])
    expected = {k: v for k, v in EXPECTED.items() if k != "lr_group_0"}
    assert buffered == sorted((key, step, value) for key, points in expected.items() for step, value in points
                              if (step, value) not in first_epoch.get(key, []))
    sync_buffer(buffer)
    assert metric_history(client, run_id) == expected
    assert client.get_run(run_id).info.status == "FINISHED"


def test_a_refused_batch_is_raised_not_buffered(tmp_path, store):
    def refusing(handler):
        real = handler.client.log_batch

        def log_batch(run_id, metrics=(), *args, **kwargs):
            if metrics:
                raise MlflowException("bad value", error_code=INVALID_PARAMETER_VALUE)
            return real(run_id, metrics, *args, **kwargs)

        handler.client.log_batch = log_batch

    with pytest.raises(MlflowException, match="bad value"):
        run_loop(store, tmp_path / "b.jsonl", experiment="refused", client_hook=refusing)
    assert not (tmp_path / "b.jsonl").exists()


_KILLED_CHILD = textwrap.dedent("""
    import sys, threading
    from ignite.engine import Engine, Events
    from spatialspec.tracking import BufferedMLFlowHandler

    uri, batching, flush_interval, iterations = sys.argv[1], sys.argv[2], float(sys.argv[3]), 4
    stuck = threading.Event()

    def step(engine, batch):
        if engine.state.epoch == 3 and engine.state.iteration % iterations == 2:
            print("stuck", flush=True)
            stuck.wait()  # killed here, in the middle of epoch 3
        return 1.0 / engine.state.iteration

    engine = Engine(step)

    @engine.on(Events.EPOCH_COMPLETED)
    def metrics(e):
        e.state.metrics = {"val_robust_auroc": e.state.epoch / 10}

    BufferedMLFlowHandler(tracking_uri=uri, experiment_name="killed", run_name=batching, output_transform=lambda x: x,
                          tag_name="train_loss", batching=batching, flush_interval=flush_interval,
                          close_on_complete=True).attach(engine)
    engine.run(range(iterations), max_epochs=5)
""")


@pytest.mark.parametrize(("batching", "flush_interval", "logged"), [
    ("epoch", 3600.0, 8),  # every completed epoch (iterations 1-8), nothing of the unfinished one
    ("async", 1e-6, 9),  # every point logged more than flush_interval before the kill: iteration 9 too
])
def test_sigkill_mid_epoch_loses_at_most_the_unflushed_points(tmp_path, batching, flush_interval, logged):
    uri = path_to_sqlite_uri(tmp_path / "mlruns.db")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    child = subprocess.Popen([sys.executable, "-c", _KILLED_CHILD, uri, batching, str(flush_interval)], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "stuck"
        client = MlflowClient(uri)
        run_id = _run_id(client, "killed", batching)
        deadline = time.monotonic() + 30
        # the points flushed before epoch 3 got stuck reach the store while the child is stuck (nothing else flushes)
        while (len(client.get_metric_history(run_id, "val_robust_auroc")) < 2
               or len(client.get_metric_history(run_id, "train_loss")) < logged) and time.monotonic() < deadline:
            time.sleep(0.05)
        child.kill()
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    history = metric_history(MlflowClient(uri), run_id)
    # epochs 1 and 2 are complete in the store; of epoch 3, iteration 9 was logged before the child got stuck: with
    # per-epoch writes it was not flushed (lost), with a flush interval it was
    assert history == {"train_loss": [(i, 1.0 / i) for i in range(1, logged + 1)],
                       "val_robust_auroc": [(1, 0.1), (2, 0.2)]}


def test_async_writes_short_epochs_together(tmp_path, store):
    """With ``batching="async"`` epochs shorter than ``flush_interval`` share a request; the points are the same."""
    batched = []
    run_loop(store, tmp_path / "b.jsonl", experiment="together", batching="async", optimizer=True,
             flush_interval=3600, client_hook=lambda h: _count_batches(h, batched))
    client = MlflowClient(store)
    assert metric_history(client, _run_id(client, "together")) == EXPECTED
    assert len(batched) == 1 and not batched[0][0]  # written once, at the end of the run, by the writer thread


def test_batcher_flushes_on_size_and_delay():
    sent = []

    class Client:
        def log_batch(self, run_id, metrics=(), synchronous=None):
            sent.append([m.step for m in metrics])

    from mlflow.entities import Metric

    from spatialspec.tracking import TrackingBuffer

    batcher = MetricBatcher(Client(), TrackingBuffer("unused.jsonl", "sqlite:////unused.db"), "e", "r", "id",
                            max_points=3, max_delay=3600)
    for step in range(7):
        batcher.add([Metric("loss", 0.5, 0, step)])
    assert batcher.flush(wait=True, timeout=10)
    assert [s for batch in sent for s in batch] == list(range(7))
    assert max(len(batch) for batch in sent) <= 3 and len(sent) >= 3  # flushed at 3 and 6 points, then the rest
    sent.clear()
    slow = MetricBatcher(Client(), TrackingBuffer("unused.jsonl", "sqlite:////unused.db"), "e", "r", "id",
                         max_delay=0.05)
    slow.add([Metric("loss", 0.5, 0, 0)])  # waits
    time.sleep(0.1)
    slow.add([Metric("loss", 0.5, 0, 1)])  # 0.1 s after the last flush: both are flushed, without a flush() call
    deadline = time.monotonic() + 10
    while not slow.idle and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sent == [[0, 1]]
    slow.close(timeout=10)
    batcher.close(timeout=10)
    with pytest.raises(ValueError, match="max_points"):
        MetricBatcher(Client(), TrackingBuffer("u.jsonl", "sqlite:////u.db"), "e", "r", "id", max_points=1001)


def test_handler_rejects_an_unknown_batching_mode(tmp_path):
    with pytest.raises(ValueError, match="batching must be one of"):
        BufferedMLFlowHandler(tracking_uri=path_to_sqlite_uri(tmp_path / "m.db"), batching="sometimes")


def _schema(path: Path) -> tuple[list, list]:
    """Every table and index of a database (its SQL as a set of lines: SQLite keeps the order in which a migration
    happened to add two constraints, which varies between MLflow's own creations) and the schema version."""
    with sqlite3.connect(path) as con:
        objects = sorted((kind, name, tuple(sorted(line.strip().rstrip(",") for line in sql.splitlines())))
                         for kind, name, sql in con.execute("SELECT type, name, sql FROM sqlite_master") if sql)
        return objects, con.execute("SELECT version_num FROM alembic_version").fetchall()


def test_create_sqlite_store_builds_mlflow_own_database(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    template = template_path()
    assert template.parent == tmp_path / "cache" / "spatialspec"
    fast = tmp_path / "fast" / "mlruns.db"
    assert create_sqlite_store(path_to_sqlite_uri(fast)) and fast.is_file() and template.is_file()
    assert not create_sqlite_store(path_to_sqlite_uri(fast))  # exists: left alone
    assert [p.name for p in fast.parent.iterdir()] == ["mlruns.db"]  # no temporary file left
    MlflowClient(path_to_sqlite_uri(tmp_path / "mlflow.db")).search_experiments()  # MLflow's own creation
    assert _schema(fast) == _schema(template) == _schema(tmp_path / "mlflow.db")
    client = MlflowClient(path_to_sqlite_uri(fast))
    assert [e.name for e in client.search_experiments()] == ["Default"]
    client.create_run(client.create_experiment("x")).info.run_id  # a working store
    # the next store is a copy of the template (left as it was); a broken template is built again
    built = template.stat().st_mtime_ns
    assert create_sqlite_store(path_to_sqlite_uri(tmp_path / "second.db"))
    assert template.stat().st_mtime_ns == built and _schema(tmp_path / "second.db") == _schema(fast)
    template.write_bytes(b"not a database")
    assert create_sqlite_store(path_to_sqlite_uri(tmp_path / "third.db")) and _schema(tmp_path / "third.db") == \
        _schema(fast)
    assert sorted(p.name for p in template.parent.iterdir()) == [template.name]
    # no writable cache: the store is built in place
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/no-cache-here")
    assert create_sqlite_store(path_to_sqlite_uri(tmp_path / "fourth.db"))
    assert _schema(tmp_path / "fourth.db") == _schema(fast)
    assert sqlite_path("http://127.0.0.1:5000") is None and sqlite_path("sqlite:///:memory:") is None
    assert not create_sqlite_store("http://127.0.0.1:5000")
