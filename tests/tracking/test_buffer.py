"""TrackingBuffer, the connection-error test, the HTTP defaults, buffer reading and the bundle tracking settings."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from spatialspec import registry
from spatialspec.tracking import (
    HTTP_DEFAULTS,
    TrackingBuffer,
    TrackingBufferWarning,
    apply_http_defaults,
    is_connection_error,
    mlflow_settings,
    read_buffer,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_is_connection_error():
    assert is_connection_error(ConnectionRefusedError())
    assert is_connection_error(TimeoutError())
    import requests

    assert is_connection_error(requests.exceptions.ConnectionError("refused"))
    assert is_connection_error(MlflowException("API request failed: Max retries exceeded"))  # INTERNAL_ERROR
    assert not is_connection_error(MlflowException("changed value", error_code=INVALID_PARAMETER_VALUE))
    assert not is_connection_error(ValueError("no"))


def test_apply_http_defaults_keeps_what_the_environment_sets(monkeypatch):
    for name in HTTP_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "77")
    applied = apply_http_defaults()
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in applied
    import os

    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "77"
    for name in set(HTTP_DEFAULTS) - {"MLFLOW_HTTP_REQUEST_TIMEOUT"}:
        assert os.environ[name] == HTTP_DEFAULTS[name] == applied[name]
    assert apply_http_defaults() == {}


def test_attempt_goes_offline_once_and_warns_once(tmp_path):
    path = tmp_path / "b.jsonl"
    buffer = TrackingBuffer(path, "http://127.0.0.1:1")
    assert buffer.attempt(lambda: 5, lambda: pytest.fail("no fallback when the action works")) == 5
    assert not path.exists() and not buffer.offline

    calls = []

    def failing():
        calls.append(1)
        raise MlflowException("Max retries exceeded")

    with pytest.warns(TrackingBufferWarning, match=str(path).replace(".", r"\.")):
        assert buffer.attempt(failing, lambda: buffer.record("metrics", "exp", "r", metrics=[])) is None
    assert buffer.offline and len(calls) == 1
    # offline: the action is not tried again, the record is written, and no second warning is issued
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        buffer.attempt(failing, lambda: buffer.record("params", "exp", "r", params={"a": "1"}))
        # another buffer object of the same URI and file shares the state
        TrackingBuffer(path, "http://127.0.0.1:1").record("end", "exp", "r", status="FINISHED", end_time=3)
    assert len(calls) == 1
    records = read_buffer(path)
    assert [r["kind"] for r in records] == ["metrics", "params", "end"]
    assert len({r["run_uid"] for r in records}) == 1 and records[0]["run_uid"].startswith("r-")
    assert all(r["tracking_uri"] == "http://127.0.0.1:1" and r["experiment"] == "exp" for r in records)


def test_attempt_raises_errors_that_are_not_connection_errors(tmp_path):
    buffer = TrackingBuffer(tmp_path / "b.jsonl", "http://127.0.0.1:1")

    def refused():
        raise MlflowException("param changed", error_code=INVALID_PARAMETER_VALUE)

    with pytest.raises(MlflowException, match="param changed"):
        buffer.attempt(refused, lambda: None)
    assert not buffer.offline and not (tmp_path / "b.jsonl").exists()


def test_record_rejects_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        TrackingBuffer(tmp_path / "b.jsonl", "sqlite:///x.db").record("bogus", "exp", "r")


def test_read_buffer_skips_a_torn_last_line_and_names_bad_lines(tmp_path):
    path = tmp_path / "b.jsonl"
    buffer = TrackingBuffer(path, "http://h")
    with pytest.warns(TrackingBufferWarning):
        buffer.record("metrics", "exp", "r", metrics=[{"key": "a", "value": float("nan"), "timestamp": 1, "step": 2}])
    good = path.read_text()
    path.write_text(good + good[: len(good) // 2])  # a kill in the middle of the second write
    with pytest.warns(TrackingBufferWarning, match="torn"):
        records = read_buffer(path)
    assert len(records) == 1 and records[0]["metrics"][0]["step"] == 2
    path.write_text("{oops\n" + good)
    with pytest.raises(ValueError, match=r"b\.jsonl:1"):
        read_buffer(path)
    bad = json.loads(good)
    del bad["run_uid"]
    path.write_text(good + json.dumps(bad) + "\n" + good)
    with pytest.raises(ValueError, match=r"b\.jsonl:2: record lacks run_uid"):
        read_buffer(path)
    with pytest.raises(FileNotFoundError):
        read_buffer(tmp_path / "missing.jsonl")


def test_settings_use_the_buffered_handler():
    from monai.bundle.utils import DEFAULT_MLFLOW_SETTINGS

    settings = mlflow_settings()
    for name, default in DEFAULT_MLFLOW_SETTINGS["configs"].items():
        if isinstance(default, dict) and "_target_" in default:
            ours = settings["configs"][name]
            assert ours["_target_"] == "spatialspec.tracking.BufferedMLFlowHandler"
            assert ours["buffer_file"] == "@mlflow_buffer_file"
            assert {k: v for k, v in ours.items() if k not in ("_target_", "buffer_file")} == \
                {k: v for k, v in default.items() if k != "_target_"}
        else:
            assert settings["configs"][name] == default
    assert settings["configs"]["mlflow_buffer_file"] == "$@output_dir + '/mlflow_buffer.jsonl'"
    two = mlflow_settings("/tmp/b.jsonl", engines=("trainer", "validator"))
    assert "evaluator" not in two["configs"] and two["configs"]["mlflow_buffer_file"] == "/tmp/b.jsonl"
    with pytest.raises(ValueError, match="engines"):
        mlflow_settings(engines=("tester",))


def test_settings_file_matches_the_settings():
    with open(REPO_ROOT / "bundles" / "tracking_mlflow.json") as f:
        assert json.load(f) == json.loads(json.dumps(mlflow_settings()))


@pytest.mark.parametrize("tracking", ["dict", "file"])
def test_config_workflow_takes_the_settings(tracking, tmp_path):
    """ConfigWorkflow(tracking=...) accepts the settings as a dict and as a file; the patched bundle config creates
    BufferedMLFlowHandlers on the trainer and the validator with the buffer under output_dir."""
    from monai.bundle import ConfigWorkflow

    from spatialspec.tracking import BufferedMLFlowHandler

    bundles = REPO_ROOT / "bundles"
    settings = mlflow_settings() if tracking == "dict" else str(bundles / "tracking_mlflow.json")
    out = tmp_path / "out"
    workflow = ConfigWorkflow(config_file=[str(f) for f in registry.config_files("seg", bundles_dir=bundles)],
                              meta_file=str(registry.meta_file("seg", bundles)), logging_file=False,
                              workflow_type=None, tracking=settings, output_dir="$" + repr(str(out)),
                              tracking_uri="http://127.0.0.1:1")
    train = [h for h in workflow.parser.get_parsed_content("train#handlers")
             if isinstance(h, BufferedMLFlowHandler)]
    validate = [h for h in workflow.parser.get_parsed_content("validate#handlers")
                if isinstance(h, BufferedMLFlowHandler)]
    assert len(train) == 1 and len(validate) == 1
    assert train[0].buffer.path == out / "mlflow_buffer.jsonl" == validate[0].buffer.path
    assert train[0].buffer.tracking_uri == "http://127.0.0.1:1"
    assert train[0].close_on_complete and not validate[0].iteration_log
