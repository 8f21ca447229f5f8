"""``spatialspec sweep``: ``plan`` writes a study's runs as independent bundle command lines (plan.json, for a SLURM
array or any scheduler); ``run`` executes a plan locally with N processes, skipping runs FINISHED in MLflow."""

from __future__ import annotations

import argparse
import copy
import sys

from spatialspec.sweep import read_plan, run_plan, write_plan

from .study import add_study_arguments, config_from_args
from .types import positive_int

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` command and its ``plan`` and ``run`` sub-commands."""
    parser = sub.add_parser("sweep", help="plan a study as independent runs, and run a plan locally")
    kinds = parser.add_subparsers(dest="kind", required=True)
    plan = kinds.add_parser("plan", help="write one entry per run: its key and its monai.bundle command line")
    plan.add_argument("--out", required=True, help="the plan file to write (JSON)")
    plan.add_argument("--out-dir", default="runs/sweep", help="where the runs write (default: %(default)s)")
    add_study_arguments(plan, "spatialspec-sweep", "MLflow tracking URI (default: sqlite:///<out-dir>/mlruns.db; "
                                                   "'none' disables tracking and the skipping of finished runs)")
    plan.set_defaults(handler=_plan)

    run = kinds.add_parser("run", help="run a plan locally; runs FINISHED in MLflow are skipped")
    run.add_argument("plan", help="plan.json written by `spatialspec sweep plan`")
    run.add_argument("--jobs", type=positive_int, default=1, help="concurrent runs (default: 1)")
    run.add_argument("--log-dir", help="one <key>.log per run (default: <out-dir>/logs)")
    run.set_defaults(handler=_run)


def _plan(args: argparse.Namespace) -> int:
    study_args = copy.copy(args)
    study_args.out = args.out_dir
    plan = write_plan(config_from_args(study_args), args.out)
    print(f"{len(plan['runs'])} runs planned in {args.out}")
    return 0


def _run(args: argparse.Namespace) -> int:
    plan = read_plan(args.plan)

    def progress(outcome):
        print(f"{outcome.key}: {outcome.status}" + (f" ({outcome.wall_s:.1f} s)" if outcome.wall_s else ""),
              flush=True)

    outcomes = run_plan(plan, jobs=args.jobs, log_dir=args.log_dir, progress=progress)
    failed = [o for o in outcomes if o.status == "failed"]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("finished", "skipped", "failed")}
    print(f"{counts['finished']} finished, {counts['skipped']} skipped (already FINISHED in MLflow), "
          f"{counts['failed']} failed")
    for o in failed:
        print(f"FAILED {o.key}: exit status {o.returncode}, log {o.log}", file=sys.stderr)
    return 1 if failed else 0
