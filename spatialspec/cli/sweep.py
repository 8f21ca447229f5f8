"""``spatialspec sweep``: ``create`` writes a study's runs as independent bundle command lines (a sweep file, e.g.
sweep.json, for a SLURM array or any scheduler); ``run`` executes a sweep file locally with N processes, skipping runs
FINISHED in MLflow. ``sweep plan``, the former name of ``create``, is kept hidden for one release ("plan" names the
budget planner, ``spatialspec plan``)."""

from __future__ import annotations

import argparse
import copy
import sys

from spatialspec.sweep import read_sweep, run_sweep, write_sweep

from .study import add_study_arguments, config_from_args
from .types import positive_int

__all__ = ["register"]

#: the one line ``spatialspec sweep plan`` prints to stderr before it does what ``sweep create`` does
PLAN_DEPRECATION = ("spatialspec sweep plan is deprecated and will be removed in the next release: use "
                    "spatialspec sweep create (same options)")


def _add_create_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="the sweep file to write (JSON, e.g. sweep.json)")
    parser.add_argument("--out-dir", default="runs/sweep", help="where the runs write (default: %(default)s)")
    add_study_arguments(parser, "spatialspec-sweep", "MLflow tracking URI (default: sqlite:///<out-dir>/mlruns.db; "
                                                     "'none' disables tracking and the skipping of finished runs)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` command and its ``create`` and ``run`` sub-commands (and the hidden ``plan`` alias)."""
    parser = sub.add_parser("sweep", help="write a study as a sweep file of independent runs, and run one locally")
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="{create,run}")
    create = kinds.add_parser("create", help="write one entry per run: its key and its monai.bundle command line")
    _add_create_arguments(create)
    create.set_defaults(handler=_create)

    run = kinds.add_parser("run", help="run a sweep file locally; runs FINISHED in MLflow are skipped")
    run.add_argument("sweep", help="the sweep file written by `spatialspec sweep create`")
    run.add_argument("--jobs", type=positive_int, default=1, help="concurrent runs (default: 1)")
    run.add_argument("--log-dir", help="one <key>.log per run (default: <out-dir>/logs)")
    run.set_defaults(handler=_run)

    plan = kinds.add_parser("plan", description=PLAN_DEPRECATION)  # no help: not listed
    _add_create_arguments(plan)
    plan.set_defaults(handler=_plan)


def _create(args: argparse.Namespace) -> int:
    study_args = copy.copy(args)
    study_args.out = args.out_dir
    sweep = write_sweep(config_from_args(study_args), args.out)
    print(f"{len(sweep['runs'])} runs in the sweep file {args.out}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    print(PLAN_DEPRECATION, file=sys.stderr)
    return _create(args)


def _run(args: argparse.Namespace) -> int:
    sweep = read_sweep(args.sweep)

    def progress(outcome):
        print(f"{outcome.key}: {outcome.status}" + (f" ({outcome.wall_s:.1f} s)" if outcome.wall_s else ""),
              flush=True)

    outcomes = run_sweep(sweep, jobs=args.jobs, log_dir=args.log_dir, progress=progress)
    failed = [o for o in outcomes if o.status == "failed"]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("finished", "skipped", "failed")}
    print(f"{counts['finished']} finished, {counts['skipped']} skipped (already FINISHED in MLflow), "
          f"{counts['failed']} failed")
    for o in failed:
        print(f"FAILED {o.key}: exit status {o.returncode}, log {o.log}", file=sys.stderr)
    return 1 if failed else 0
