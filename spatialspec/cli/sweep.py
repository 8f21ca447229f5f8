"""``spatialspec sweep``: ``create`` writes a study's runs as independent bundle command lines (a sweep file, e.g.
sweep.json, for a SLURM array or any scheduler); ``run`` executes a sweep file locally with N processes, or as Ray
tasks on a Ray cluster (``--engine ray``), skipping runs finished with their fingerprint. ``sweep plan``, the former
name of ``create``, is kept hidden for one release ("plan" names the budget planner, ``spatialspec plan``)."""

from __future__ import annotations

import argparse
import copy
import math
import sys

from spatialspec.errors import InputError
from spatialspec.sweep import read_sweep, run_sweep, write_sweep

from .study import add_study_arguments, config_from_args
from .types import checked_number, non_negative_int, positive_int, positive_number

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

    run = kinds.add_parser("run", help="run a sweep file locally or on a Ray cluster; finished runs are skipped")
    run.add_argument("sweep", help="the sweep file written by `spatialspec sweep create`")
    run.add_argument("--engine", choices=("local", "ray"), default="local",
                     help="local: --jobs processes on this machine; ray: one Ray task per run on an existing Ray "
                          "cluster (pip install 'spatialspec[ray]') (default: %(default)s)")
    run.add_argument("--jobs", type=positive_int, default=1, help="concurrent runs of --engine local (default: 1)")
    run.add_argument("--log-dir", help="one <key>.log per run (default: <out-dir>/logs)")
    ray = run.add_argument_group("--engine ray")
    ray.add_argument("--address", help="the Ray cluster: HOST:PORT of its head, ray://HOST:PORT or auto "
                                       "(default: $RAY_ADDRESS, else auto)")
    ray.add_argument("--cpus-per-run", type=positive_number, default=None, help="Ray num_cpus per run (default: 1)")
    ray.add_argument("--gpus-per-run", type=_non_negative_number, default=None,
                     help="Ray num_gpus per run (default: 0; a fraction shares a GPU)")
    ray.add_argument("--max-retries", type=non_negative_int, default=None,
                     help="reruns of a run whose worker died or whose process was killed (default: 3)")
    run.set_defaults(handler=_run)

    plan = kinds.add_parser("plan", description=PLAN_DEPRECATION)  # no help: not listed
    _add_create_arguments(plan)
    plan.set_defaults(handler=_plan)


_non_negative_number = checked_number(float, lambda v: math.isfinite(v) and v >= 0, "must be a number >= 0",
                                      "must be a finite number >= 0")


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
    ray_options = {"address": args.address, "cpus_per_run": args.cpus_per_run, "gpus_per_run": args.gpus_per_run,
                   "max_retries": args.max_retries}
    if args.engine == "local":
        given = [f"--{name.replace('_', '-')}" for name, value in ray_options.items() if value is not None]
        if given:
            raise InputError(f"{', '.join(given)}: only with --engine ray")
    elif args.jobs != 1:
        raise InputError("--jobs: only with --engine local (Ray runs as many runs at once as the cluster's "
                         "resources allow: see --cpus-per-run, --gpus-per-run)")
    sweep = read_sweep(args.sweep)

    def progress(outcome):
        print(f"{outcome.key}: {outcome.status}" + (f" ({outcome.wall_s:.1f} s)" if outcome.wall_s else ""),
              flush=True)

    if args.engine == "ray":
        from spatialspec.sweep.ray_engine import run_sweep_ray

        options = {name: value for name, value in ray_options.items() if value is not None}  # else its defaults
        outcomes = run_sweep_ray(sweep, log_dir=args.log_dir, progress=progress, **options)
    else:
        outcomes = run_sweep(sweep, jobs=args.jobs, log_dir=args.log_dir, progress=progress)
    failed = [o for o in outcomes if o.status == "failed"]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("finished", "skipped", "failed")}
    print(f"{counts['finished']} finished, {counts['skipped']} skipped (already finished with their fingerprint), "
          f"{counts['failed']} failed")
    for o in failed:
        why = o.reason or f"exit status {o.returncode}"
        print(f"FAILED {o.key}: {why}, log {o.log}", file=sys.stderr)
    return 1 if failed else 0
