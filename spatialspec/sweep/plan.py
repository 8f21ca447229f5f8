"""Deprecated module: sweep files are made, written and read by :mod:`spatialspec.sweep.sweep_file` ("plan" names the
budget planner only, :mod:`spatialspec.cost.planner`). These names resolve here, with a ``DeprecationWarning``, until
the next release."""

from __future__ import annotations

from spatialspec._deprecated import moved_names

__all__: list[str] = []

__getattr__ = moved_names(__name__, {"PLAN_FORMAT": "spatialspec.sweep.sweep_file.SWEEP_FORMAT",
                                     "run_command": "spatialspec.sweep.sweep_file.run_command",
                                     "make_plan": "spatialspec.sweep.sweep_file.make_sweep",
                                     "write_plan": "spatialspec.sweep.sweep_file.write_sweep",
                                     "read_plan": "spatialspec.sweep.sweep_file.read_sweep"})
