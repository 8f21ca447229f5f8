"""``spatialspec sweep``: ``plan`` writes a study's runs as independent bundle command lines (plan.json, for a SLURM
array or any scheduler); ``run`` executes a plan locally with N processes, skipping runs FINISHED in MLflow."""

from __future__ import annotations

import argparse
import copy
import sys

from spatialspec.sweep import read_plan, run_plan, write_plan

from .study import config_from_args

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` command and its ``plan`` and ``run`` sub-commands."""
    parser = sub.add_parser("sweep", help="plan a study as independent runs, and run a plan locally")
    kinds = parser.add_subparsers(dest="kind", required=True)
    plan = kinds.add_parser("plan", help="write one entry per run: its key and its monai.bundle command line")
    plan.add_argument("--out", required=True, help="the plan file to write (JSON)")
    plan.add_argument("--out-dir", default="runs/sweep", help="where the runs write (default: %(default)s)")
    plan.add_argument("--dataset", choices=("synthetic", "datalist"), default="synthetic")
    plan.add_argument("--datalist", help="decathlon-style datalist.json (implies --dataset datalist)")
    plan.add_argument("--levels", default="binary,bbox,seg", help="comma-separated levels, as for `spatialspec study`")
    plan.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: %(default)s)")
    plan.add_argument("--score", default="mean", help="image score of the checkpoint selection (default: mean)")
    plan.add_argument("--binary-model", default="pixel", help="comma-separated models for the binary level")
    plan.add_argument("--epochs", type=int, default=50)
    plan.add_argument("--location-labels", default="all", metavar="N1,N2,...",
                      help="comma-separated label budgets and/or 'all' (default: all)")
    plan.add_argument("--synthetic", action="append", default=[], metavar="KEY=VALUE",
                      help="data-model parameter, repeatable")
    plan.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                      help="bundle config override for every run, repeatable")
    plan.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///<out-dir>/mlruns.db; 'none' "
                      "disables tracking and the skipping of finished runs)")
    plan.add_argument("--experiment-name", default="spatialspec-sweep")
    plan.add_argument("--bundles-dir", help="folder holding the bundles (default: the source tree's bundles/)")
    plan.set_defaults(handler=_plan)

    run = kinds.add_parser("run", help="run a plan locally; runs FINISHED in MLflow are skipped")
    run.add_argument("plan", help="plan.json written by `spatialspec sweep plan`")
    run.add_argument("--jobs", type=int, default=1, help="concurrent runs (default: 1)")
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
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {args.jobs}")

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
