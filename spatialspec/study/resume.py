"""Running a study's runs against what its output folder already holds (issue 13, run identity): each run's
fingerprint is computed before anything trains, run folders made with other settings are refused, runs whose records
carry their fingerprint are reused and an interrupted run resumes from its checkpoint (Saab et al. 2022, Sec. 3.3.2
and 5: the study's many runs, durable across interruptions)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from spatialspec.atomic import write_json_atomic
from spatialspec.data.synthetic import cached_splits

from . import runner
from .inputs import validate_study_inputs
from .runner import RunSpec, StudyConfig, run_dir, study_runs, train_overrides
from .workflow import build_workflow

__all__ = ["expected_fingerprint", "check_run_folders", "prepare_study", "run_study", "train_missing",
           "read_results"]


def expected_fingerprint(config: StudyConfig, spec: RunSpec) -> dict[str, Any]:
    """The fingerprint (:func:`spatialspec.identity.run_fingerprint`) the run ``spec`` of ``config`` will have,
    from its bundle's config with the study's overrides, without training or reading data: the network, loss,
    optimizer and transforms are built, nothing else.

    Raises:
        InputError: if the bundle config cannot build them (the root cause, in one line).
    """
    workflow = build_workflow(spec.config_files("train", config.bundles_dir), spec.meta_file(config.bundles_dir), None,
                         score=config.scores[0], **train_overrides(config, spec))
    return workflow.parser.get_parsed_content("fingerprint")


def check_run_folders(config: StudyConfig, runs: Sequence[RunSpec],
                      fingerprints: dict[str, dict[str, Any]]) -> None:
    """Refuse, before anything trains, every run folder of ``runs`` that holds a resume checkpoint or a ``model.pt``
    made by a run with another fingerprint (other level, seed, data, hyper-parameters, ...); with
    ``config.fresh`` nothing is refused (the runs start over).

    Raises:
        RunIdentityError: one line per folder refused (the first few), naming the fields that differ and the ways
            out (another ``--out``, ``--fresh``).
    """
    from spatialspec.errors import InputError, RunIdentityError
    from spatialspec.handlers.resume import load_resume_checkpoint, stored_fingerprint
    from spatialspec.identity import FINGERPRINT_FILE, fingerprint_differences, read_fingerprint_file

    if config.fresh:
        return
    problems = []
    for spec in runs:
        folder = run_dir(config, spec)
        checkpoint, marker = folder / "resume" / "latest.pt", folder / "models" / FINGERPRINT_FILE
        stored = []
        if checkpoint.is_file():
            try:
                stored.append(stored_fingerprint(load_resume_checkpoint(checkpoint, mmap=True)))
            except InputError as e:
                raise InputError(f"run {spec.key}: {str(e).replace('--resume False', '--fresh')}") from None
        if marker.is_file():
            stored.append(read_fingerprint_file(marker))
        for fingerprint in stored:
            differences = fingerprint_differences(fingerprint, fingerprints[spec.key])
            if differences:
                problems.append(f"{spec.key} ({'; '.join(differences[:4])}"
                                f"{'; ...' if len(differences) > 4 else ''})")
                break
    if problems:
        more = f", and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise RunIdentityError(
            f"{Path(config.out_dir).resolve()} holds runs made with other settings, left untouched: "
            f"{', '.join(problems[:3])}{more}. Ways out: another --out; or --fresh to retrain them from scratch "
            "and overwrite them.")


def _reusable_records(config: StudyConfig, spec: RunSpec, records: Sequence[dict[str, Any]], digest: str
                      ) -> list[dict[str, Any]] | None:
    """The recorded results of ``spec`` when they can stand for a new run: same run key and fingerprint, every score
    of the study with the same bootstrap, and the checkpoint and predictions files still there; else ``None`` (train,
    or resume)."""
    if config.fresh:
        return None
    mine = [r for r in records if r.get("run_key") == spec.key and r.get("fingerprint") == digest
            and r.get("bootstrap", 0) == config.bootstrap]
    by_score = {r["score"]: r for r in mine}
    if not all(score in by_score for score in config.scores):
        return None
    if not (run_dir(config, spec) / "models" / "model.pt").is_file():
        return None
    records = [by_score[score] for score in config.scores]
    # the per-image predictions behind the intervals and `spatialspec compare` must still be there
    if not all(r.get("predictions") and (Path(config.out_dir).resolve() / r["predictions"]).is_file()
               for r in records):
        return None
    return records


def read_results(path: Path) -> list[dict[str, Any]]:
    """The records of an existing ``results.json`` (none when there is no file); a file that is not a list of
    records is refused (:func:`spatialspec.cost.planner.load_results`) rather than overwritten."""
    from spatialspec.cost.planner import load_results

    return load_results(path) if path.is_file() else []


def prepare_study(config: StudyConfig, runs: Sequence[RunSpec] | None = None) -> dict[str, dict[str, Any]]:
    """Everything a study checks before it writes or trains anything: its input data
    (:func:`~spatialspec.study.inputs.validate_study_inputs`), each run's fingerprint (:func:`expected_fingerprint`)
    and the run folders already in ``out_dir`` (:func:`check_run_folders`).

    Returns:
        the fingerprint of every run, by run key.

    Raises:
        InputError: listing what is wrong with the data or the options.
        RunIdentityError: when ``out_dir`` holds runs made with other settings.
    """
    runs = study_runs(config) if runs is None else list(runs)
    validate_study_inputs(config, runs)
    fingerprints = {spec.key: expected_fingerprint(config, spec) for spec in runs}
    check_run_folders(config, runs, fingerprints)
    return fingerprints


def run_study(config: StudyConfig, progress: Callable[[RunSpec, list[dict[str, Any]]], None] | None = None,
              fingerprints: dict[str, dict[str, Any]] | None = None, runs: Sequence[RunSpec] | None = None,
              results_file: str = "results.json", reusable: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Run every level x model x seed of ``config``; ``out_dir/results.json`` is rewritten (atomically) after
    each run, so an interrupted study keeps what it finished, and running the same study again resumes it: a run
    whose records and checkpoint carry the run's fingerprint is reused, an interrupted one resumes from its last
    epoch, the others train. Run folders of runs with other settings are refused before anything trains
    (:func:`check_run_folders`) unless ``config.fresh``.

    Args:
        config: the study.
        progress: called after each run with its spec and records (the CLI's progress bar).
        fingerprints: what :func:`prepare_study` returned, when the caller ran it already.
        runs: the runs to train (default: :func:`study_runs` of ``config``); a tuned study
            (:mod:`spatialspec.study.tuning`) passes its tuning runs, then its runs with the chosen values.
        results_file: the file under ``out_dir`` the records are written to (``tuning.json`` for tuning runs).
        reusable: records from elsewhere (the other file) that may stand for a run, as the file's own do.

    Returns:
        the records of the study's runs (see :func:`run_training`), in the order of :func:`study_runs`.

    Raises:
        InputError: before anything is written, listing what is wrong with the datalist or the label budgets
            (:func:`~spatialspec.study.inputs.validate_study_inputs`).
        RunIdentityError: before anything is written, when ``out_dir`` holds runs made with other settings.
    """
    runs = study_runs(config) if runs is None else list(runs)
    out = Path(config.out_dir)
    previous = [*read_results(out / results_file), *reusable]
    if fingerprints is None:
        fingerprints = prepare_study(config, runs)
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    with cached_splits():  # the runs sharing a seed generate their synthetic splits once
        for spec in runs:
            records = _reusable_records(config, spec, previous, fingerprints[spec.key]["digest"])
            if records is None:
                records = runner.run_training(config, spec)
            results.extend(records)
            write_json_atomic(out / results_file, results)
            if progress is not None:
                progress(spec, records)
    return results


def train_missing(config: StudyConfig, runs: Sequence[RunSpec], require_checkpoint: bool = False,
                  progress: Callable[[int, RunSpec, list[dict[str, Any]] | None, float], None] | None = None
                  ) -> list[dict[str, Any]]:
    """Train the runs whose records are not yet in ``<out_dir>/results.json``, rewriting it (atomically) after each
    run: a rerun resumes an interrupted reproduction. A recorded run counts only with the fingerprint the run would
    have now; run folders of runs with other settings are refused before anything trains (as in :func:`run_study`).
    Records of other runs in ``results.json`` are kept.

    Args:
        config: the study the runs belong to.
        runs: the runs, in training order.
        require_checkpoint: also retrain a recorded run whose checkpoint is gone (its old records are replaced).
        progress: called per run with its 1-based index, spec, new records (``None`` when skipped) and seconds.

    Returns:
        every record of ``results.json``.

    Raises:
        RunIdentityError: before anything trains, when a run folder or record was made with other settings.
    """
    results_path = Path(config.out_dir) / "results.json"
    results = read_results(results_path)
    fingerprints = prepare_study(config, runs)
    with cached_splits():  # the runs sharing a seed generate their synthetic splits once
        for i, spec in enumerate(runs, 1):
            digest = fingerprints[spec.key]["digest"]
            recorded = [r for r in results if r.get("run_key") == spec.key]
            if recorded and all(r.get("fingerprint") == digest for r in recorded) and not config.fresh and (
                    not require_checkpoint or (run_dir(config, spec) / "models" / "model.pt").is_file()):
                if progress is not None:
                    progress(i, spec, None, 0.0)
                continue
            results = [r for r in results if r.get("run_key") != spec.key]
            started = time.perf_counter()
            records = runner.run_training(config, spec)
            results.extend(records)
            write_json_atomic(results_path, results)
            if progress is not None:
                progress(i, spec, records, time.perf_counter() - started)
    return results
