"""Reproduce Fig. 4 and Table 4 of Saab et al. (MLHC 2022, Sec. 5.2) on the synthetic data: robust and overall AUROC
against the number of location-labelled training samples for Seg-ERM, BBox-ERM, Seg-SSL (Sec. 4.2.1), Seg-SPL
(Sec. 4.2.2) and Binary-ERM.

Every location-supervised method is trained once per label budget and seed (``spatialspec.study.run_training``,
the bundles' ``location_labels``: a seeded, class-stratified, nested subset of the training split, the same images
for every method at a given budget and seed); Binary-ERM is trained once per seed on all training samples. The
default data setting is the paper's synthetic model with a fainter abnormality (``mu_a = 1``): with the paper's
``mu_a = 2`` a segmentation network reaches robust AUROC ~1 from 4 labelled images on, which leaves no trade-off to
measure (see docs/figure4.md).

Outputs under ``--out``: ``results.json`` (one record per run and score, rewritten after each run; a rerun skips the
runs it holds, so an interrupted reproduction resumes), ``figure4.csv`` (mean and std over seeds per method and
budget), ``figure4_robust.png`` and ``figure4_overall.png`` (Fig. 4a/4b, error bars one std), ``table4.md`` (Table 4's
form: robust AUROC mean +- std per method and budget) and ``figure4_config.json``.

    python scripts/reproduce_figure4.py [--out runs/figure4] [--budgets 5 10 20 40] [--seeds 0 1 2] [--epochs 50]
        [--methods seg-erm bbox-erm seg-ssl seg-spl binary-erm] [--method-budgets seg-ssl=5,10,20 ...]
        [--synthetic KEY=VALUE ...] [--tracking-uri none]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from spatialspec.atomic import atomic_write, save_figure_atomic, write_json_atomic
from spatialspec.cli.study import parse_override
from spatialspec.data import parse_synthetic_overrides
from spatialspec.stats import nan_mean_std
from spatialspec.study import RunSpec, StudyConfig, study_runs, train_missing, write_summary_csv
from spatialspec.study.bundles import BASELINES
from spatialspec.study.bundles import METHODS as _STUDY_METHOD_LEVELS

# the entries a StudyConfig takes as methods (the rest are levels)
STUDY_METHODS = (*BASELINES, *_STUDY_METHOD_LEVELS)

__all__ = ["METHODS", "DEFAULT_SYNTHETIC", "parse_args", "study_config", "method_runs", "summarize_figure4",
           "table4_markdown", "main"]

# method name -> (study level entry, level, model) of its runs
METHODS = {"seg-erm": ("seg", "seg", "pixel"), "bbox-erm": ("bbox", "bbox", "pixel"),
           "seg-ssl": ("seg-ssl", "seg", "ssl"), "seg-spl": ("seg-spl", "seg", "spl"),
           "binary-erm": ("binary", "binary", "pixel")}
LABELS = {"seg-erm": "Seg-ERM", "bbox-erm": "BBox-ERM", "seg-ssl": "Seg-SSL", "seg-spl": "Seg-SPL",
          "binary-erm": "Binary-ERM"}
COLORS = {"seg-erm": "tab:blue", "bbox-erm": "tab:orange", "seg-ssl": "tab:green", "seg-spl": "tab:red",
          "binary-erm": "tab:grey"}
DEFAULT_SYNTHETIC = ("mu_a=1.0",)
FIGURES = ("robust_auroc", "overall_auroc")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/figure4")
    parser.add_argument("--budgets", type=int, nargs="+", default=[5, 10, 20, 40],
                        help="numbers of location-labelled training samples (default: 5 10 20 40 of m = 150)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--method-budgets", nargs="*", default=[], metavar="METHOD=N1,N2",
                        help="a subset of --budgets for one method, e.g. seg-ssl=5,10,20 (Table 4 has three budgets)")
    parser.add_argument("--synthetic", nargs="*", default=list(DEFAULT_SYNTHETIC), metavar="KEY=VALUE",
                        help="data-model overrides (default: mu_a=1.0)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="bundle config overrides for every run, e.g. ssl_weight=0.1")
    parser.add_argument("--tracking-uri", default="none", help="MLflow URI ('none', the default, disables it)")
    parser.add_argument("--bundles-dir", default=None)
    args = parser.parse_args(argv)
    if any(b < 1 for b in args.budgets) or len(set(args.budgets)) != len(args.budgets):
        parser.error(f"--budgets must be distinct integers >= 1, got {args.budgets}")
    args.budgets_of = {}
    for item in args.method_budgets:
        method, _, values = item.partition("=")
        try:
            budgets = [int(v) for v in values.split(",") if v.strip()]
        except ValueError:
            budgets = []
        if method not in METHODS or method == "binary-erm" or not budgets or not set(budgets) <= set(args.budgets):
            parser.error(f"--method-budgets {item!r}: expected METHOD=N1,N2 with a location-supervised method and "
                         f"budgets among --budgets {args.budgets}")
        args.budgets_of[method] = budgets
    return args


def method_runs(runs: Sequence[RunSpec], budgets_of: dict[str, list[int]]) -> list[RunSpec]:
    """``runs`` without the budgets ``--method-budgets`` leaves out of a method."""
    kept = []
    for spec in runs:
        method = _method_of({"level": spec.level, "model": spec.model})
        if method in budgets_of and spec.location_labels not in budgets_of[method]:
            continue
        kept.append(spec)
    return kept


def study_config(args: argparse.Namespace) -> StudyConfig:
    """The study whose runs the reproduction trains (binary once per seed, the rest once per budget and seed)."""
    synthetic = parse_synthetic_overrides(args.synthetic)
    too_big = [b for b in args.budgets if b > synthetic.m]
    if too_big:
        raise ValueError(f"--budgets {too_big} exceed the m = {synthetic.m} training samples")
    entries = [METHODS[m][0] for m in args.methods]
    return StudyConfig(levels=[e for e in entries if e not in STUDY_METHODS],
                       methods=[e for e in entries if e in STUDY_METHODS], seeds=args.seeds, epochs=args.epochs,
                       synthetic=synthetic, out_dir=args.out, tracking_uri=args.tracking_uri,
                       experiment_name="spatialspec-figure4", bundles_dir=args.bundles_dir,
                       overrides=dict(parse_override(item) for item in args.overrides),
                       location_labels=list(args.budgets))


def _method_of(record: dict[str, Any]) -> str | None:
    for name, (_, level, model) in METHODS.items():
        if record["level"] == level and record.get("model", "pixel") == model:
            return name
    return None


def summarize_figure4(results: Sequence[dict[str, Any]], methods: Sequence[str], budgets: Sequence[int],
                      seeds: Sequence[int], budgets_of: dict[str, list[int]] | None = None) -> list[dict[str, Any]]:
    """Mean and std (ddof = 0) over seeds of the robust and overall AUROC (score ``mean``) per method and budget
    (``budgets_of[method]`` where given, else ``budgets``); Binary-ERM (all samples) has one row with
    ``location_labels`` ``None``."""
    rows = []
    for method in methods:
        for budget in ([None] if method == "binary-erm" else (budgets_of or {}).get(method, budgets)):
            members = [r for r in results if _method_of(r) == method and r["score"] == "mean" and r["seed"] in seeds
                       and r.get("location_labels") == budget]
            row: dict[str, Any] = {"method": LABELS[method], "location_labels": budget, "n_seeds": len(members)}
            for figure in FIGURES:
                row[f"{figure}_mean"], row[f"{figure}_std"] = nan_mean_std([m[figure] for m in members])
            rows.append(row)
    return rows


def table4_markdown(rows: Sequence[dict[str, Any]], budgets: Sequence[int], m: int, figure: str = "robust_auroc"
                    ) -> str:
    """Table 4's form: one row per method, one column per budget ``N (m/N x)``, cells ``mean +- std`` over seeds;
    Binary-ERM (all ``m`` samples) fills every column with its single value."""
    header = "| method | " + " | ".join(f"{b} ({m / b:.3g}x fewer)" for b in budgets) + " |"
    lines = [header, "|---" * (len(budgets) + 1) + "|"]
    for method in dict.fromkeys(r["method"] for r in rows):
        cells = []
        for b in budgets:
            row = next((r for r in rows if r["method"] == method and r["location_labels"] in (b, None)), None)
            cells.append("-" if row is None or math.isnan(row[f"{figure}_mean"]) else
                         f"{row[f'{figure}_mean']:.3f} ± {row[f'{figure}_std']:.3f}")
        name = f"{method} (all {m})" if method == LABELS["binary-erm"] else method
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot(rows: Sequence[dict[str, Any]], budgets: Sequence[int], figure: str, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, label in LABELS.items():
        members = [r for r in rows if r["method"] == label]
        if not members:
            continue
        if name == "binary-erm":
            mean, std = members[0][f"{figure}_mean"], members[0][f"{figure}_std"]
            ax.axhline(mean, color=COLORS[name], ls="--", label=f"{label} (all samples)")
            ax.axhspan(mean - std, mean + std, color=COLORS[name], alpha=0.15)
            continue
        x = [r["location_labels"] for r in members]
        # BBox-ERM dashed with square markers: on square abnormalities it equals Seg-ERM and would hide it
        dashed = name == "bbox-erm"
        ax.errorbar(x, [r[f"{figure}_mean"] for r in members], yerr=[r[f"{figure}_std"] for r in members],
                    color=COLORS[name], marker="s" if dashed else "o", ls="--" if dashed else "-",
                    mfc="none" if dashed else None, capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xticks(list(budgets), [str(b) for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel("number of location-labelled training samples")
    ax.set_ylabel(f"{'robust' if figure == 'robust_auroc' else 'overall'} AUROC (test)")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return save_figure_atomic(fig, path)


def _progress(total: int) -> Callable[[int, RunSpec, list[dict[str, Any]] | None, float], None]:
    """The progress line printed per run by :func:`spatialspec.study.train_missing`."""
    def progress(i: int, spec: RunSpec, records: list[dict[str, Any]] | None, seconds: float) -> None:
        if records is None:
            print(f"[{i}/{total}] {spec.key}: done, skipped", flush=True)
        else:
            print(f"[{i}/{total}] {spec.key}: robust AUROC {records[0]['robust_auroc']:.3f}, overall "
                  f"{records[0]['overall_auroc']:.3f} ({seconds:.0f} s)", flush=True)
    return progress


def main(argv: Sequence[str] | None = None) -> int:
    """Train, summarise, plot and tabulate (see the module docstring)."""
    args = parse_args(argv)
    # MONAI's per-epoch INFO logs of 51 runs drown the progress lines
    logging.disable(logging.INFO)
    try:
        config = study_config(args)
    except ValueError as e:
        print(f"reproduce_figure4: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = method_runs(study_runs(config), args.budgets_of)
    write_json_atomic(out / "figure4_config.json", {"budgets": args.budgets, "method_budgets": args.budgets_of,
                                                    "seeds": args.seeds, "epochs": args.epochs,
                                                    "methods": args.methods, "synthetic": config.synthetic.to_dict(),
                                                    "overrides": config.overrides, "runs": [r.key for r in runs]})
    started = time.perf_counter()
    results = train_missing(config, runs, progress=_progress(len(runs)))
    rows = summarize_figure4(results, args.methods, args.budgets, args.seeds, args.budgets_of)
    write_summary_csv(rows, out / "figure4.csv")
    m = config.synthetic.m
    title = f"synthetic data (m = {m}, mu_a = {config.synthetic.mu_a:g})"
    for figure in FIGURES:
        _plot(rows, args.budgets, figure, out / f"figure4_{figure.split('_')[0]}.png", title)
    table = table4_markdown(rows, args.budgets, m)
    atomic_write(out / "table4.md", table)
    print(table)
    print(table4_markdown(rows, args.budgets, m, figure="overall_auroc"))
    print(f"{len(runs)} runs; {time.perf_counter() - started:.0f} s this invocation; outputs in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
