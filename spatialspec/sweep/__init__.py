"""Sweeps: a study's runs as independent bundle command lines (a plan), and a local runner for plans."""

from __future__ import annotations

from .plan import make_plan, read_plan, run_command, write_plan
from .run import RunOutcome, finished_run_keys, run_plan

__all__ = ["make_plan", "read_plan", "run_command", "write_plan", "RunOutcome", "finished_run_keys", "run_plan"]
