"""What a report shows, read from a study folder or from the MLflow records of a study: the records, the summary rows
(with their intervals), the study's parameters and the saliency audit of ``spatialspec audit --saliency``.

The saliency contract (``<folder>/saliency.json``): ``rows`` (per level, model and seed: ``share_spurious``,
``share_abnormality``, ``share_elsewhere``, ``n_images``; shares may be null), ``summary`` (per level and model:
``n_seeds`` and ``share_*_mean`` / ``share_*_std``) and ``figures`` (``path`` relative to the folder, ``level``,
``model``, ``seed``, ``caption``).
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spatialspec.errors import InputError

__all__ = ["ReportData", "load_folder", "load_mlflow", "load_saliency", "read_summary_csv", "SALIENCY_FILE"]

SALIENCY_FILE = "saliency.json"
_TEXT_COLUMNS = ("level", "model", "score")
_STUDY_FILES = ("results.json", "summary.csv", "study.json")


@dataclass
class ReportData:
    """Everything a report shows.

    Attributes:
        records: the study's records (one per run and score, :func:`spatialspec.study.run_training`).
        rows: the summary rows (:func:`spatialspec.study.summarize`: mean, std and interval per level and score).
        params: the study's parameters (``study.json``; ``None`` when absent).
        source: where the results were read (a folder, or an MLflow URI and experiment).
        parent_run_id: the study's MLflow parent run, when read from MLflow or known.
        saliency: the saliency audit (see the module docstring), ``None`` when absent.
        saliency_dir: the folder its figure paths are relative to.
        notes: lines the report shows about what it could not show.
    """

    records: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    params: dict[str, Any] | None = None
    source: str = ""
    parent_run_id: str | None = None
    saliency: dict[str, Any] | None = None
    saliency_dir: Path | None = None
    notes: list[str] = field(default_factory=list)


def _cell(name: str, text: str) -> Any:
    """One ``summary.csv`` cell as its value: text columns stay text, empty cells are ``None``, numbers are numbers."""
    if name in _TEXT_COLUMNS:
        return text
    if text in ("", "None"):
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if name in ("n_seeds", "location_labels") and math.isfinite(number) else number


def read_summary_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a study's ``summary.csv`` (:func:`spatialspec.study.write_summary_csv`) with typed values.

    Raises:
        InputError: naming the file when it lacks the ``level``, ``score`` or ``robust_auroc_mean`` column.
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"level", "score", "robust_auroc_mean"} - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{path}: not a study summary (no column {', '.join(sorted(missing))})")
        return [{name: _cell(name, text) for name, text in row.items()} for row in reader]


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{what} {path} is not readable JSON: {e}") from None


def load_saliency(folder: str | os.PathLike, required: bool = False) -> dict[str, Any] | None:
    """The saliency audit in ``folder/saliency.json`` (the contract of the module docstring).

    Args:
        folder: the audit's output folder.
        required: raise when the file is missing (``--saliency DIR`` given explicitly); otherwise return ``None``.

    Raises:
        InputError: naming the file when it is missing (``required``) or not a saliency audit.
    """
    path = Path(folder) / SALIENCY_FILE
    if not path.is_file():
        if required:
            raise InputError(f"--saliency {folder}: no {SALIENCY_FILE} there (written by `spatialspec audit "
                             "--saliency`)")
        return None
    content = _read_json(path, "saliency audit")
    if not isinstance(content, dict) or not all(isinstance(content.get(k, []), list)
                                                for k in ("rows", "summary", "figures")):
        raise InputError(f"{path}: not a saliency audit (a JSON object with lists 'rows', 'summary', 'figures')")
    for i, figure in enumerate(content.get("figures", [])):
        if not isinstance(figure, dict) or not isinstance(figure.get("path"), str):
            raise InputError(f"{path}: figures[{i}] has no 'path'")
    return {k: content.get(k, []) for k in ("rows", "summary", "figures")}


def _attach_saliency(data: ReportData, folder: Path | None, saliency: str | os.PathLike | None) -> ReportData:
    """Read the saliency audit of ``--saliency`` (required there) or of ``folder/saliency`` (optional)."""
    if saliency is None and folder is None:
        return data
    chosen = Path(saliency) if saliency is not None else Path(folder) / "saliency"
    data.saliency = load_saliency(chosen, required=saliency is not None)
    data.saliency_dir = chosen if data.saliency is not None else None
    return data


def load_folder(results_dir: str | os.PathLike, saliency: str | os.PathLike | None = None,
                records: list[dict[str, Any]] | None = None, rows: list[dict[str, Any]] | None = None) -> ReportData:
    """The report data of a study folder (``--out`` of ``spatialspec study``).

    Args:
        results_dir: the folder: ``results.json`` (required), ``summary.csv`` (its rows and intervals; recomputed
            from the records and predictions files when absent), ``study.json``, ``saliency/saliency.json``.
        saliency: the saliency audit's folder, when not ``results_dir/saliency``.
        records: the records, when the caller has them (else read from ``results.json``).
        rows: the summary rows, when the caller has them.

    Raises:
        InputError: naming the folder or file that is missing or malformed.
    """
    from spatialspec.study.compare import load_results

    folder = Path(results_dir)
    records = load_results(folder) if records is None else records
    if rows is None:
        summary = folder / "summary.csv"
        rows = read_summary_csv(summary) if summary.is_file() else _summarize(records, folder)
    study = folder / "study.json"
    params = _read_json(study, "study parameters") if study.is_file() else None
    data = ReportData(records=records, rows=rows, params=params if isinstance(params, dict) else None,
                      source=f"study folder {folder.resolve()}")
    return _attach_saliency(data, folder, saliency)


def _summarize(records: list[dict[str, Any]], folder: Path | None = None) -> list[dict[str, Any]]:
    """:func:`spatialspec.study.summarize` of records that may lack ``wall_s`` (records written by other tools)."""
    from spatialspec.study.report import summarize

    return summarize([{"wall_s": math.nan, **r} for r in records], out_dir=folder)


def _check_store(tracking_uri: str) -> None:
    """Refuse a SQLite store file that does not exist (MLflow would create an empty one)."""
    if tracking_uri.startswith("sqlite:///"):
        from urllib.parse import unquote

        file = Path(unquote(tracking_uri[len("sqlite:///"):]))
        if not file.is_file():
            raise InputError(f"--tracking-uri {tracking_uri}: no MLflow database at {file}")


def load_mlflow(tracking_uri: str, experiment_name: str, saliency: str | os.PathLike | None = None) -> ReportData:
    """The report data of a study logged to MLflow: the files of its latest parent run (``results.json``,
    ``summary.csv``, ``study.json``; :func:`spatialspec.study.tracking.log_study_run`), or, without a parent run,
    records rebuilt from its training runs' parameters and test metrics (no intervals of the mean then).

    Raises:
        InputError: naming the URI or experiment when the store or experiment does not exist or holds no study run.
    """
    _check_store(tracking_uri)  # before MLflow is imported, and before it creates an empty store
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise InputError(f"--experiment {experiment_name!r}: no such MLflow experiment at {tracking_uri}")
    source = f"MLflow {tracking_uri}, experiment {experiment_name!r}"
    parents = client.search_runs([experiment.experiment_id], filter_string="attributes.run_name = 'study'",
                                 order_by=["attributes.start_time DESC"], max_results=20)
    for parent in parents:
        names = {a.path for a in client.list_artifacts(parent.info.run_id)}
        if "results.json" not in names:
            continue
        with tempfile.TemporaryDirectory() as tmp, _no_progress_bar():
            for name in _STUDY_FILES:
                if name in names:
                    client.download_artifacts(parent.info.run_id, name, tmp)
            data = load_folder(tmp)
        data.source, data.parent_run_id = f"{source}, parent run {parent.info.run_id}", parent.info.run_id
        return _attach_saliency(data, None, saliency)
    records = _records_from_runs(client, experiment.experiment_id)
    if not records:
        raise InputError(f"--experiment {experiment_name!r} at {tracking_uri}: no study run with test figures")
    data = ReportData(records=records, rows=_summarize(records), source=f"{source} (training runs; no parent run)")
    data.notes.append("read from the training runs' MLflow records: no intervals of the mean (no predictions files)")
    return _attach_saliency(data, None, saliency)


@contextmanager
def _no_progress_bar() -> Iterator[None]:
    """Silence MLflow's artifact download progress bars (a report prints one line) and restore the setting."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _duration_s(info: Any) -> float:
    """A run's wall time in seconds from its MLflow start and end (NaN while unknown)."""
    if info.start_time is None or info.end_time is None:
        return math.nan
    return (info.end_time - info.start_time) / 1000.0


def _records_from_runs(client: Any, experiment_id: str) -> list[dict[str, Any]]:
    """Study records from training runs logged by ``spatialspec study`` (params ``level``, ``seed``, ...; metrics
    ``test_<figure>_<score>``), one per run and score."""
    from spatialspec.metrics.robust_auroc import FIGURE_NAMES
    from spatialspec.registry import METHODS

    bundle_models: dict[str, set[str]] = {}
    for entry in METHODS.values():
        bundle_models.setdefault(entry.bundle, set()).add(entry.model)
    prefix = "test_robust_auroc_"
    records = []
    for run in client.search_runs([experiment_id], max_results=50_000, order_by=["attributes.start_time ASC"]):
        params, metrics = run.data.params, run.data.metrics
        if "level" not in params:
            continue
        scores = [k[len(prefix):] for k in metrics if k.startswith(prefix) and not k.startswith(prefix + "ci_")]
        models = bundle_models.get(params.get("bundle", ""), {"pixel"})
        model = params.get("method") or (next(iter(models)) if len(models) == 1 else "pixel")
        budget = params.get("location_labels", "none")
        for score in scores:
            record: dict[str, Any] = {
                "level": params["level"], "model": model, "score": score, "seed": int(params.get("seed", 0)),
                "location_labels": None if budget in ("none", "None", "") else int(float(budget)),
                "run_key": run.info.run_name, "run_id": run.info.run_id, "epochs": params.get("epochs"),
                "select": params.get("select"), "wall_s": _duration_s(run.info)}
            for name in FIGURE_NAMES:
                record[name] = float(metrics.get(f"test_{name}_{score}", math.nan))
            records.append(record)
    return records
