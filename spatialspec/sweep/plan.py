"""Sweep plans: every run of a study (level x model x label budget x seed) as an independent
``python -m monai.bundle run`` command line, for a SLURM array or any scheduler (the runs of Saab et al. 2022,
Sec. 3.3.2 and Sec. 5.2 / Fig. 4, spread over machines instead of one process)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from spatialspec.atomic import write_json_atomic
from spatialspec.errors import InputError
from spatialspec.study.inputs import validate_study_inputs
from spatialspec.study.bundles import find_bundles_dir
from spatialspec.study.runner import RunSpec, StudyConfig, plan_runs, run_dir, train_overrides

from .checks import check_plan_entry

__all__ = ["PLAN_FORMAT", "run_command", "make_plan", "write_plan", "read_plan"]

#: 2: the plan names its bundles folder, which bounds what its entries may run (:mod:`spatialspec.sweep.checks`)
PLAN_FORMAT = 2


def run_command(config: StudyConfig, spec: RunSpec) -> list[str]:
    """The argument list (``python -m monai.bundle run ...``) that trains ``spec`` with its bundle: output under
    ``<out_dir>/runs/<key>``, MLflow run named by the run key (unless tracking is ``none``)."""
    overrides = train_overrides(config, spec)
    configs = [str(Path(overrides["bundle_root"]) / "configs" / name) for name in spec.config_files]
    argv = ["python", "-m", "monai.bundle", "run",
            "--config_file", configs[0] if len(configs) == 1 else repr(configs),
            "--meta_file", str(Path(overrides["bundle_root"]) / "configs" / "metadata.json"),
            "--score", config.scores[0]]
    for key, value in overrides.items():
        if value is not None:  # datalist None: the bundle's default, the synthetic data
            argv += [f"--{key}", value if isinstance(value, str) else repr(value)]
    if config.tracking_enabled:
        argv += ["--tracking", "mlflow", "--tracking_uri", config.resolved_tracking_uri(),
                 "--experiment_name", config.experiment_name, "--run_name", spec.key]
    return argv


def make_plan(config: StudyConfig) -> dict[str, Any]:
    """The plan of ``config``: tracking settings, the bundles folder and one entry per run (``key``, bundle, level,
    model, seed, ``location_labels``, ``output_dir``, ``argv`` and the shell-quoted ``command``). ``sweep run``
    derives each run's fingerprint from its ``argv`` (:func:`spatialspec.sweep.run.entry_fingerprint`)."""
    runs = []
    for spec in plan_runs(config):
        argv = run_command(config, spec)
        runs.append({"key": spec.key, "bundle": spec.bundle, "level": spec.level, "model": spec.model,
                     "seed": spec.seed, "location_labels": spec.location_labels,
                     "output_dir": str(run_dir(config, spec)), "argv": argv, "command": shlex.join(argv)})
    keys = [r["key"] for r in runs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"run keys are not unique: {keys}")
    return {"format": PLAN_FORMAT, "tracking_uri": config.resolved_tracking_uri() if config.tracking_enabled else None,
            "experiment_name": config.experiment_name, "out_dir": str(Path(config.out_dir).resolve()),
            "bundles_dir": str(find_bundles_dir(config.bundles_dir)), "runs": runs}


def write_plan(config: StudyConfig, path: str | Path) -> dict[str, Any]:
    """Write :func:`make_plan` of ``config`` to ``path`` (JSON, atomically) and return it.

    Raises:
        InputError: before anything is written, if the study's datalist or label budgets are bad
            (:func:`~spatialspec.study.inputs.validate_study_inputs`).
    """
    validate_study_inputs(config, plan_runs(config))
    plan = make_plan(config)
    write_json_atomic(path, plan)
    return plan


def read_plan(path: str | Path) -> dict[str, Any]:
    """Read a plan written by :func:`write_plan`.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        InputError: (a ``ValueError``) if ``path`` is not a sweep plan.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"sweep plan not found: {path}")
    try:
        plan = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not a spatialspec sweep plan: not valid JSON ({e})") from None
    if isinstance(plan, dict) and isinstance(plan.get("format"), int) and plan["format"] < PLAN_FORMAT:
        raise InputError(f"{path} was written by an older spatialspec (plan format {plan['format']}); write it again "
                         "with `spatialspec sweep plan`")
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT or not isinstance(plan.get("runs"), list):
        raise InputError(f"{path} is not a spatialspec sweep plan (format {PLAN_FORMAT})")
    for i, run in enumerate(plan["runs"]):
        if not isinstance(run, dict) or not {"key", "argv"} <= set(run):
            raise InputError(f"{path}: runs[{i}] has no 'key' or 'argv'")
        check_plan_entry(plan, i, run, source=str(path))
    keys = [run["key"] for run in plan["runs"]]
    if len(set(keys)) != len(keys):
        raise InputError(f"{path}: run keys are not unique")
    return plan
