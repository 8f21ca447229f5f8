"""Sweep plans: every run of a study (level x model x label budget x seed) as an independent
``python -m monai.bundle run`` command line, for a SLURM array or any scheduler (the runs of Saab et al. 2022,
Sec. 3.3.2 and Sec. 5.2 / Fig. 4, spread over machines instead of one process)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from spatialspec.atomic import write_json_atomic
from spatialspec.study.runner import RunSpec, StudyConfig, plan_runs, run_dir, train_overrides

__all__ = ["PLAN_FORMAT", "run_command", "make_plan", "write_plan", "read_plan"]

PLAN_FORMAT = 1


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
    """The plan of ``config``: tracking settings and one entry per run (``key``, bundle, level, model, seed,
    ``location_labels``, ``output_dir``, ``argv`` and the shell-quoted ``command``)."""
    runs = []
    for spec in plan_runs(config):
        argv = run_command(config, spec)
        runs.append({"key": spec.key, "bundle": spec.bundle, "level": spec.level, "model": spec.model,
                     "seed": spec.seed, "location_labels": spec.location_labels,
                     "output_dir": str(run_dir(config, spec)),
                     "argv": argv, "command": shlex.join(argv)})
    keys = [r["key"] for r in runs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"run keys are not unique: {keys}")
    return {"format": PLAN_FORMAT, "tracking_uri": config.resolved_tracking_uri() if config.tracking_enabled else None,
            "experiment_name": config.experiment_name, "out_dir": str(Path(config.out_dir).resolve()), "runs": runs}


def write_plan(config: StudyConfig, path: str | Path) -> dict[str, Any]:
    """Write :func:`make_plan` of ``config`` to ``path`` (JSON, atomically) and return it."""
    plan = make_plan(config)
    write_json_atomic(path, plan)
    return plan


def read_plan(path: str | Path) -> dict[str, Any]:
    """Read a plan written by :func:`write_plan`.

    Raises:
        ValueError: if ``path`` is not a sweep plan.
    """
    plan = json.loads(Path(path).read_text())
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT or not isinstance(plan.get("runs"), list):
        raise ValueError(f"{path} is not a spatialspec sweep plan (format {PLAN_FORMAT})")
    for i, run in enumerate(plan["runs"]):
        if not {"key", "argv"} <= set(run):
            raise ValueError(f"{path}: runs[{i}] has no 'key' or 'argv'")
    return plan
