"""Sweep files: every run of a study (level x model x label budget x seed) as an independent
``python -m monai.bundle run`` command line, for a SLURM array or any scheduler (the runs of Saab et al. 2022,
Sec. 3.3.2 and Sec. 5.2 / Fig. 4, spread over machines instead of one process). ``spatialspec sweep create`` writes
one, ``spatialspec sweep run`` runs it (:mod:`spatialspec.sweep.run`).

Format history (:data:`SWEEP_FORMAT`, under the key ``sweep_format``): 2, under the key ``format``, was written by
``spatialspec sweep plan`` with the same content and is read as it is; 1 (no ``bundles_dir``) is refused.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from spatialspec.atomic import write_json_atomic
from spatialspec.errors import InputError
from spatialspec.study.bundles import find_bundles_dir
from spatialspec.study.inputs import validate_study_inputs
from spatialspec.study.runner import RunSpec, StudyConfig, run_dir, study_runs, train_overrides

from .checks import check_sweep_entry

__all__ = ["SWEEP_FORMAT", "SWEEP_FORMAT_KEY", "run_command", "make_sweep", "write_sweep", "read_sweep"]

#: 3: the version key is ``sweep_format``; 2 (key ``format``, "plan format 2"): the file names its bundles folder,
#: which bounds what its entries may run (:mod:`spatialspec.sweep.checks`)
SWEEP_FORMAT = 3
#: the key of the format version in a sweep file
SWEEP_FORMAT_KEY = "sweep_format"
#: the key and version of the files ``spatialspec sweep plan`` wrote, read as they are
_OLD_FORMAT_KEY, _OLD_FORMAT = "format", 2


def run_command(config: StudyConfig, spec: RunSpec) -> list[str]:
    """The argument list (``python -m monai.bundle run ...``) that trains ``spec`` with its bundle: output under
    ``<out_dir>/runs/<key>``, MLflow run named by the run key (unless tracking is ``none``)."""
    overrides = train_overrides(config, spec)
    configs = [str(path) for path in spec.config_files("train", config.bundles_dir)]
    argv = ["python", "-m", "monai.bundle", "run",
            "--config_file", configs[0] if len(configs) == 1 else repr(configs),
            "--meta_file", str(spec.meta_file(config.bundles_dir)),
            "--score", config.scores[0]]
    for key, value in overrides.items():
        if value is not None:  # datalist None: the bundle's default, the synthetic data
            argv += [f"--{key}", value if isinstance(value, str) else repr(value)]
    if config.tracking_enabled:
        argv += ["--tracking", "mlflow", "--tracking_uri", config.resolved_tracking_uri(),
                 "--experiment_name", config.experiment_name, "--run_name", spec.key]
    return argv


def make_sweep(config: StudyConfig) -> dict[str, Any]:
    """The sweep of ``config``: tracking settings, the bundles folder and one entry per run (``key``, bundle, level,
    model, seed, ``location_labels``, ``output_dir``, ``argv`` and the shell-quoted ``command``). ``sweep run``
    derives each run's fingerprint from its ``argv`` (:func:`spatialspec.sweep.run.entry_fingerprint`)."""
    runs = []
    for spec in study_runs(config):
        argv = run_command(config, spec)
        runs.append({"key": spec.key, "bundle": spec.bundle, "level": spec.level, "model": spec.model,
                     "seed": spec.seed, "location_labels": spec.location_labels,
                     "output_dir": str(run_dir(config, spec)), "argv": argv, "command": shlex.join(argv)})
    keys = [r["key"] for r in runs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"run keys are not unique: {keys}")
    return {SWEEP_FORMAT_KEY: SWEEP_FORMAT,
            "tracking_uri": config.resolved_tracking_uri() if config.tracking_enabled else None,
            "experiment_name": config.experiment_name, "out_dir": str(Path(config.out_dir).resolve()),
            "bundles_dir": str(find_bundles_dir(config.bundles_dir)), "runs": runs}


def write_sweep(config: StudyConfig, path: str | Path) -> dict[str, Any]:
    """Write :func:`make_sweep` of ``config`` to ``path`` (JSON, atomically) and return it.

    Raises:
        InputError: before anything is written, if the study's datalist or label budgets are bad
            (:func:`~spatialspec.study.inputs.validate_study_inputs`).
    """
    validate_study_inputs(config, study_runs(config))
    sweep = make_sweep(config)
    write_json_atomic(path, sweep)
    return sweep


def _format_of(sweep: Any) -> int | None:
    """The format version of a loaded sweep file: its ``sweep_format``, or the ``format`` of a file written by
    ``spatialspec sweep plan``; ``None`` when it has neither as an integer."""
    if not isinstance(sweep, dict):
        return None
    for key in (SWEEP_FORMAT_KEY, _OLD_FORMAT_KEY):
        value = sweep.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def read_sweep(path: str | Path) -> dict[str, Any]:
    """Read a sweep file written by :func:`write_sweep`, or by ``spatialspec sweep plan`` (format 2).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        InputError: (a ``ValueError``) if ``path`` is not a sweep file, naming the file and what is wrong.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"sweep file not found: {path}")
    try:
        sweep = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not a spatialspec sweep file: not valid JSON ({e})") from None
    version = _format_of(sweep)
    if version is not None and version < _OLD_FORMAT:
        raise InputError(f"{path} was written by an older spatialspec (plan format {version}); write it again "
                         "with `spatialspec sweep create`")
    if version not in (SWEEP_FORMAT, _OLD_FORMAT) or not isinstance(sweep.get("runs"), list):
        raise InputError(f"{path} is not a spatialspec sweep file (format {SWEEP_FORMAT})")
    for i, run in enumerate(sweep["runs"]):
        if not isinstance(run, dict) or not {"key", "argv"} <= set(run):
            raise InputError(f"{path}: runs[{i}] has no 'key' or 'argv'")
        check_sweep_entry(sweep, i, run, source=str(path))
    keys = [run["key"] for run in sweep["runs"]]
    if len(set(keys)) != len(keys):
        raise InputError(f"{path}: run keys are not unique")
    return sweep
