"""Replay an MLflow buffer (:mod:`spatialspec.tracking.buffer`) into a tracking store: ``spatialspec sync``."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spatialspec.atomic import atomic_write

from .buffer import read_buffer
from .errors import TrackingBufferWarning, apply_http_defaults

__all__ = ["SyncReport", "sync_buffer", "synced_path", "BUFFER_UID_TAG"]

BUFFER_UID_TAG = "spatialspec.buffer_uid"
_PARAM_BATCH, _METRIC_BATCH = 100, 1000  # MLflow's log_batch limits


@dataclass
class SyncReport:
    """What :func:`sync_buffer` did: the runs it wrote to (name -> run id), what it logged and what it skipped
    because the store already had it (same param value, same metric key and step, same artifact name)."""

    buffer: str
    synced_to: str | None = None
    runs: dict[str, str] = field(default_factory=dict)
    params_logged: int = 0
    params_skipped: int = 0
    metrics_logged: int = 0
    metrics_skipped: int = 0
    artifacts_logged: int = 0
    artifacts_skipped: int = 0
    missing_artifacts: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line per figure, for the command line."""
        runs = ", ".join(f"{name} ({run_id})" for name, run_id in self.runs.items()) or "none"
        lines = [f"runs: {runs}",
                 f"params: {self.params_logged} logged, {self.params_skipped} already there",
                 f"metrics: {self.metrics_logged} logged, {self.metrics_skipped} already there",
                 f"artifacts: {self.artifacts_logged} logged, {self.artifacts_skipped} already there"]
        if self.missing_artifacts:
            lines.append(f"missing artifact files (not logged): {', '.join(self.missing_artifacts)}")
        if self.conflicts:
            lines.append(f"params with another value in the store (kept): {', '.join(self.conflicts)}")
        if self.synced_to:
            lines.append(f"buffer renamed to {self.synced_to}")
        return "\n".join(lines)


def synced_path(buffer: str | os.PathLike) -> Path:
    """Where a synced buffer is kept: ``<buffer>.synced``."""
    return Path(f"{buffer}.synced")


class _Replay:
    """The replay of one run's records into one store."""

    def __init__(self, client: Any, report: SyncReport) -> None:
        self.client, self.report = client, report
        self.experiments: dict[str, str] = {}
        self.run_ids: dict[tuple[str, str], str] = {}  # (experiment, run name) -> run id resolved in this sync

    def experiment_id(self, name: str) -> str:
        if name not in self.experiments:
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                self.experiments[name] = self.client.create_experiment(name, artifact_location=_artifact_location(
                    self.client.tracking_uri))
            else:
                self.experiments[name] = experiment.experiment_id
        return self.experiments[name]

    def resolve_run(self, records: Sequence[dict[str, Any]]) -> str:
        """The store's run of ``records``: the run id they carry if the store has it, else the run tagged with their
        uid (an earlier replay), else an unfinished run of the same name (as MONAI's handler reuses one), else a new
        run; tagged with the uid so a replay finds it again."""
        first = records[0]
        experiment_id = self.experiment_id(first["experiment"])
        uid, name = first["run_uid"], first["run_name"]
        run_id = None
        for candidate in dict.fromkeys(r["run_id"] for r in records if r.get("run_id")):
            try:
                run = self.client.get_run(candidate)
            except Exception:  # a run of another store: not here
                continue
            if run.info.experiment_id == experiment_id:
                run_id = run.info.run_id
                break
        for query in (f"tags.`{BUFFER_UID_TAG}` = '{uid}'",
                      f"attributes.run_name = '{name}' and attributes.status != 'FINISHED'"):
            if run_id is not None:
                break
            runs = self.client.search_runs([experiment_id], filter_string=query,
                                           order_by=["attributes.start_time DESC"], max_results=1)
            run_id = runs[0].info.run_id if runs else None
        if run_id is None:
            start = min((r.get("start_time") or r["time"]) for r in records)
            run_id = self.client.create_run(experiment_id, start_time=start, run_name=name).info.run_id
        self.client.set_tag(run_id, BUFFER_UID_TAG, uid)
        self.run_ids[(first["experiment"], name)] = run_id
        self.report.runs[name] = run_id
        return run_id

    def replay(self, run_id: str, records: Sequence[dict[str, Any]]) -> None:
        from mlflow.entities import Metric, Param

        params = dict(self.client.get_run(run_id).data.params)
        history: dict[str, set[int]] = {}
        for record in records:
            kind = record["kind"]
            if kind == "params":
                new = []
                for key, value in record["params"].items():
                    value = str(value)
                    if key in params:
                        self.report.params_skipped += 1
                        if params[key] != value and key not in self.report.conflicts:
                            self.report.conflicts.append(key)
                        continue
                    params[key] = value
                    new.append(Param(key, value))
                for i in range(0, len(new), _PARAM_BATCH):
                    self.client.log_batch(run_id, params=new[i:i + _PARAM_BATCH])
                self.report.params_logged += len(new)
            elif kind == "metrics":
                new = []
                for point in record["metrics"]:
                    key, step = point["key"], int(point["step"])
                    if key not in history:
                        history[key] = {m.step for m in self.client.get_metric_history(run_id, key)}
                    if step in history[key]:
                        self.report.metrics_skipped += 1
                        continue
                    history[key].add(step)
                    new.append(Metric(key, float(point["value"]), int(point["timestamp"]), step))
                for i in range(0, len(new), _METRIC_BATCH):
                    self.client.log_batch(run_id, metrics=new[i:i + _METRIC_BATCH])
                self.report.metrics_logged += len(new)
            elif kind == "artifacts":
                self._artifacts(run_id, record["paths"], record.get("artifact_path"))
            elif kind == "tags":
                for key, value in record["tags"].items():
                    self.client.set_tag(run_id, key, str(value))
            elif kind == "parent":
                for child in record["children"]:
                    child_id = self.run_ids.get((record["experiment"], child)) or self._latest(record, child)
                    if child_id is not None:
                        self.client.set_tag(child_id, "mlflow.parentRunId", run_id)
            elif kind == "end":
                self.client.set_terminated(run_id, record.get("status") or "FINISHED", record.get("end_time"))

    def _latest(self, record: dict[str, Any], name: str) -> str | None:
        runs = self.client.search_runs([self.experiment_id(record["experiment"])],
                                       filter_string=f"attributes.run_name = '{name}'",
                                       order_by=["attributes.start_time DESC"], max_results=1)
        return runs[0].info.run_id if runs else None

    def _artifacts(self, run_id: str, paths: Sequence[str], artifact_path: str | None) -> None:
        present = {Path(a.path).name for a in self.client.list_artifacts(run_id, artifact_path)}
        for path in paths:
            if not os.path.exists(path):
                self.report.missing_artifacts.append(path)
                continue
            if Path(path).name in present:
                self.report.artifacts_skipped += 1
                continue
            if os.path.isdir(path):
                self.client.log_artifacts(run_id, path, artifact_path)
            else:
                self.client.log_artifact(run_id, path, artifact_path)
            present.add(Path(path).name)
            self.report.artifacts_logged += 1


def _artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of an experiment created in a local SQLite store go next to the database (as MONAI's handler
    places them); other stores decide themselves."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    from monai.utils import path_to_uri

    return path_to_uri(Path(tracking_uri[len("sqlite:///"):]).parent / "mlruns")


def sync_buffer(buffer: str | os.PathLike, tracking_uri: str | None = None, rename: bool = True) -> SyncReport:
    """Push the records of an MLflow buffer into a tracking store (Saab et al. 2022's runs, Sec. 3.3.2 and 5,
    logged while the server was unreachable).

    Runs are grouped by their buffer uid; each goes to the run it was meant for (see ``_Replay.resolve_run``) in
    its experiment (created if missing). Params already in the store, metric points with a key and step already in
    the store, and artifacts with a name already in the store are skipped, so replaying a buffer again (e.g. its
    ``.synced`` copy, or after an interrupted sync) adds nothing. Metrics keep their original steps and timestamps.

    Args:
        buffer: the JSON-lines buffer (``mlflow_buffer.jsonl``).
        tracking_uri: where to replay; ``None``: the URI each record was meant for.
        rename: on success, move the buffer to ``<buffer>.synced`` (atomically; appended to an existing one) so
            a training process writes a fresh buffer.

    Raises:
        FileNotFoundError: if ``buffer`` does not exist.
        ValueError: for an invalid buffer (naming the file and line).
        mlflow.exceptions.MlflowException: if the store cannot be reached (the buffer is kept).
    """
    from mlflow.tracking import MlflowClient

    buffer = Path(buffer)
    records = read_buffer(buffer)
    apply_http_defaults()
    report = SyncReport(buffer=str(buffer))
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(record["run_uid"], []).append(record)
    replays: dict[str, _Replay] = {}
    for run_records in groups.values():
        uri = tracking_uri or run_records[0]["tracking_uri"]
        if not uri:
            raise ValueError(f"{buffer}: records of run {run_records[0]['run_name']!r} name no tracking_uri; "
                             "pass one")
        if uri not in replays:
            replays[uri] = _Replay(MlflowClient(tracking_uri=uri), report)
        replay = replays[uri]
        replay.replay(replay.resolve_run(run_records), run_records)
    if report.missing_artifacts:
        warnings.warn(f"{buffer}: artifact files no longer exist and were not logged: "
                      f"{', '.join(report.missing_artifacts)}", TrackingBufferWarning, stacklevel=2)
    if rename and not buffer.name.endswith(".synced"):
        report.synced_to = str(_retire(buffer))
    return report


def _retire(buffer: Path) -> Path:
    """Move ``buffer`` to ``<buffer>.synced`` atomically, appending it to the records of an earlier sync."""
    target = synced_path(buffer)
    if target.exists():
        atomic_write(target, target.read_bytes() + buffer.read_bytes())
        buffer.unlink()
    else:
        os.replace(buffer, target)
    return target
