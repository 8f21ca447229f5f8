"""Sweeps: a study's runs as independent bundle command lines (a sweep file, written by ``spatialspec sweep create``),
and runners for sweep files (``spatialspec sweep run``): local processes, or Ray tasks on a Ray cluster
(:mod:`spatialspec.sweep.ray_engine`; Ray is imported only when a sweep runs on it). "Plan" names the budget planner
only (:mod:`spatialspec.cost.planner`); the sweep's former ``*_plan`` names resolve, with a ``DeprecationWarning``,
until the next release."""

from __future__ import annotations

from spatialspec._deprecated import moved_names

from .ray_engine import run_sweep_ray
from .run import RunOutcome, finished_run_keys, run_sweep
from .sweep_file import SWEEP_FORMAT, make_sweep, read_sweep, run_command, write_sweep

__all__ = ["SWEEP_FORMAT", "make_sweep", "read_sweep", "run_command", "write_sweep", "RunOutcome", "finished_run_keys",
           "run_sweep", "run_sweep_ray"]

__getattr__ = moved_names(__name__, {"make_plan": "spatialspec.sweep.sweep_file.make_sweep",
                                     "read_plan": "spatialspec.sweep.sweep_file.read_sweep",
                                     "write_plan": "spatialspec.sweep.sweep_file.write_sweep",
                                     "run_plan": "spatialspec.sweep.run.run_sweep"})
