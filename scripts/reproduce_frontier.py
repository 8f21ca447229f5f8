"""The cost-robustness frontier (issue 15, after Saab et al., MLHC 2022, Sec. 4.1 and 5.2): every way this toolkit uses
location labels, and the image-label baselines, trained under one protocol on the synthetic data, and their robust
AUROC against the annotation dollars each method and label budget costs.

One ``spatialspec study`` trains everything (same data, splits, label subsets, epochs, selection rule and test
protocol for every method): Binary-ERM with the pixel-wise network and with the classifier, JTT, GEORGE and DFR on
image labels; Seg-ERM, BBox-ERM, Seg-SSL, Seg-SPL, mixed supervision and the mask-guided classifiers (RRR, GradMask,
ActDiff, GAIN) at each location-label budget. The methods' weights are first tuned on the validation split at one
seed and budget (``spatialspec study --tune``, Sec. 4's protocol), and the chosen values train every seed and budget.

Two data settings (``--setting``):

* ``default``: the synthetic model's defaults (Sec. 3.2.2: rho = 1, mu_a = 2), budgets 5, 10, 20, 40 and all 150
  training images, seeds 0, 1, 2;
* ``hard``: rho = 0.9 and mu_a = 1 (10% of the abnormal training images lack the spurious block, and the abnormality is
  fainter), budgets 5, 20 and all, seeds 0, 1.

The run is resumable: the study's ``results.json`` holds every finished run and a rerun with the same settings trains
only what is missing (runs are reused only when everything that determines them is equal). Outputs under ``--out``:
the study's own files (``results.json``, ``summary.csv``, ``report.html``, ``tuning.json``, ...) and
``frontier.csv`` / ``frontier.md`` (one row per method and budget: extra annotation cost from
:mod:`spatialspec.cost`, robust AUROC mean +- std over seeds with the 95% interval of the mean over the test images,
overall AUROC, run time relative to its family's ERM run, whether it reads s, whether it is on the Pareto front) and
``frontier.png``.

    python scripts/reproduce_frontier.py --setting default [--out runs/frontier-default] [--epochs 50]
        [--budgets 5,10,20,40,all] [--seeds 0,1,2] [--methods ...] [--tune KEY=V1,V2 ...] [--no-tune]
        [--positive-fraction F] [--tracking-uri none]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from spatialspec.atomic import atomic_write, write_json_atomic
from spatialspec.cli.main import main as spatialspec_main
from spatialspec.cost.frontier import frontier_markdown, frontier_points, plot_frontier, write_frontier_csv
from spatialspec.report import read_summary_csv

__all__ = ["SETTINGS", "LEVELS", "METHODS", "TUNE_GRID", "parse_args", "study_argv", "main"]

#: the data settings: data-model overrides, label budgets and seeds
SETTINGS = {"default": {"synthetic": (), "budgets": "5,10,20,40,all", "seeds": "0,1,2"},
            "hard": {"synthetic": ("rho=0.9", "mu_a=1.0"), "budgets": "5,20,all", "seeds": "0,1"}}
#: the study's selection rules that read the spurious label s on validation (spatialspec.handlers.selection)
S_READING_RULES = ("val_robust_auroc", "val_worst_group_auroc")
#: the study levels (Binary-ERM, BBox-ERM, Seg-ERM) and the binary level's two networks
LEVELS = "binary,bbox,seg"
BINARY_MODELS = "pixel,classifier"
#: the study methods: image-label baselines, then the location-label methods
METHODS = ("jtt", "george", "dfr", "seg-ssl", "seg-spl", "mixed", "rrr", "gradmask", "actdiff", "gain")
#: each method's weight, tuned on validation at --tune-budget and --tune-seed (3 values each), by method
TUNE_GRID = {"rrr": "rrr_weight=0.1,1,10", "gradmask": "gradmask_weight=0.1,1,10", "actdiff": "actdiff_weight=0.1,1,10",
             "gain": "gain_weight=0.1,1,10", "mixed": "mil_weight=0,0.1,1", "seg-spl": "spl_weight=0.1,0.3,1",
             "seg-ssl": "ssl_weight=0.03,0.1,0.3"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setting", choices=list(SETTINGS), default="default")
    parser.add_argument("--out", default=None, help="output folder (default: runs/frontier-<setting>)")
    parser.add_argument("--budgets", default=None, help="comma-separated label budgets, integers or 'all' "
                                                        "(default: the setting's)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default: the setting's)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated study methods beyond the levels (default: all of them)")
    parser.add_argument("--levels", default=LEVELS)
    parser.add_argument("--tune", action="append", default=None, metavar="KEY=V1,V2,...",
                        help="the tuning grid (default: the weight of every method trained, TUNE_GRID)")
    parser.add_argument("--no-tune", action="store_true", help="train every method with its bundle's weights")
    parser.add_argument("--tune-budget", default="20")
    parser.add_argument("--tune-seed", default="0")
    parser.add_argument("--synthetic", action="append", default=None, metavar="KEY=VALUE",
                        help="data-model overrides (default: the setting's)")
    parser.add_argument("--positive-fraction", type=float, default=None,
                        help="share of positives among the location-labelled images, for the cost (default: the "
                             "data model's mu_y, as the label subsets are class-stratified)")
    parser.add_argument("--bootstrap", default="1000", help="resamples of the test-set interval")
    parser.add_argument("--tracking-uri", default="none", help="MLflow URI ('none', the default, disables it)")
    parser.add_argument("--bundles-dir", default=None)
    args = parser.parse_args(argv)
    setting = SETTINGS[args.setting]
    args.out = args.out or f"runs/frontier-{args.setting}"
    args.budgets = args.budgets or setting["budgets"]
    args.seeds = args.seeds or setting["seeds"]
    args.synthetic = list(setting["synthetic"]) if args.synthetic is None else args.synthetic
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    args.tune = [] if args.no_tune else args.tune if args.tune is not None else [
        TUNE_GRID[m] for m in methods if m in TUNE_GRID]
    return args


def study_argv(args: argparse.Namespace) -> list[str]:
    """The ``spatialspec study`` command line of the reproduction."""
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    argv = ["study", "--out", args.out, "--levels", args.levels, "--binary-model", BINARY_MODELS,
            "--methods", ",".join(methods), "--seeds", args.seeds, "--epochs", str(args.epochs),
            "--location-labels", args.budgets, "--bootstrap", str(args.bootstrap), "--tracking-uri", args.tracking_uri,
            "--experiment-name", f"spatialspec-frontier-{args.setting}", "--no-progress"]
    for item in args.synthetic:
        argv += ["--synthetic", item]
    if args.tune:
        argv += ["--tune-budget", args.tune_budget, "--tune-seed", args.tune_seed]
        for item in args.tune:
            argv += ["--tune", item]
    if args.bundles_dir:
        argv += ["--bundles-dir", args.bundles_dir]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Train (or resume) the study, then write the frontier table and figure (see the module docstring)."""
    args = parse_args(argv)
    out = Path(args.out)
    started = time.perf_counter()
    command = study_argv(args)
    print("spatialspec " + " ".join(command), flush=True)
    status = spatialspec_main(command)
    if status:
        return status
    params = json.loads((out / "study.json").read_text())
    synthetic = params["synthetic"]
    positive_fraction = args.positive_fraction if args.positive_fraction is not None else float(synthetic["mu_y"])
    rows = read_summary_csv(out / "summary.csv")  # the study's: seed means and intervals of the chosen runs
    points = frontier_points(rows, positive_fraction=positive_fraction, training_size=int(synthetic["m"]),
                             selection_reads_spurious=params["select"] in S_READING_RULES)
    write_frontier_csv(points, out / "frontier.csv")
    title = (f"synthetic data ({args.setting}: rho = {synthetic['rho']:g}, mu_a = {synthetic['mu_a']:g}, "
             f"{len(args.seeds.split(','))} seeds)")
    plot_frontier(points, out / "frontier.png", title=title)
    table = frontier_markdown(points)
    atomic_write(out / "frontier.md", table)
    write_json_atomic(out / "frontier_config.json", {"setting": args.setting, "study": command,
                                                     "positive_fraction": positive_fraction})
    print(table)
    print(f"{time.perf_counter() - started:.0f} s this invocation; outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
