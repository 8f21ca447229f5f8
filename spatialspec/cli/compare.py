"""``spatialspec compare``: the difference in robust AUROC between two levels of a study on the same test images, with
a paired bootstrap interval and p-value, per seed and over seeds."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from .types import non_negative_int, positive_int

__all__ = ["register", "format_comparison"]

FIGURES = ("robust_auroc", "overall_auroc", "worst_pair_auroc", "auroc_y0s0_y1s0", "auroc_y0s0_y1s1",
           "auroc_y0s1_y1s0", "auroc_y0s1_y1s1")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``compare`` command."""
    parser = sub.add_parser(
        "compare", help="difference in robust AUROC between two levels of a study, with a paired bootstrap test",
        description="Compare two rows (levels, models or methods) of a study on the same test images: the difference "
                    "b - a of the robust AUROC (or --figure), per seed and averaged over seeds, with a 95%% paired "
                    "bootstrap interval (stratified by the four (y, s) subgroups) and a two-sided p-value.")
    parser.add_argument("results", metavar="RESULTS", help="a study folder (--out of `spatialspec study`)")
    parser.add_argument("--a", required=True, metavar="LEVEL",
                        help="the first row as the study table names it (binary, bbox, seg, dilate:2, "
                             "'binary (classifier)', 'seg n=20', ...) or a baseline / method name (jtt, seg-ssl)")
    parser.add_argument("--b", required=True, metavar="LEVEL", help="the second row; the difference is b - a")
    parser.add_argument("--score", help="image score (default: the study's first, its headline score)")
    parser.add_argument("--figure", default="robust_auroc", choices=FIGURES,
                        help="the compared figure (default: %(default)s)")
    parser.add_argument("--bootstrap", type=positive_int, default=1000, metavar="N",
                        help="bootstrap resamples (default: %(default)s)")
    parser.add_argument("--seed", type=non_negative_int, default=0, metavar="K",
                        help="seed of the resampling (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.set_defaults(handler=_compare)


def _signed(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:+.3f}"


def _plain(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.3f}"


def format_comparison(report: dict[str, Any]) -> str:
    """The text table of a comparison (``Comparison.to_dict()``): one line per seed and the pooled line."""
    a, b = report["a"], report["b"]
    width = max(len(a), len(b), 7)
    figure = report["figure"].replace("_auroc", " AUROC").replace("_", " ")
    lines = [f"{figure}, score {report['score']}: {b} - {a} on the same test images "
             f"({round(100 * report['confidence'])}% paired bootstrap stratified by (y, s), {report['n_resamples']} "
             f"resamples, seed {report['seed']})",
             f"{'seed':<8} {'images':>6}  {a:>{width}}  {b:>{width}}  {'b - a':>7}  {'95% CI':>17}  {'p':>6}"]
    lines.append("-" * len(lines[-1]))
    pooled = dict(report["pooled"])
    rows = [(str(r["seed"]), r) for r in report["per_seed"]] + [(f"mean ({len(pooled['seeds'])})", pooled)]
    for name, r in rows:
        interval = f"[{_signed(r['ci_low'])}, {_signed(r['ci_high'])}]"
        p = "nan" if math.isnan(r["p_value"]) else f"{r['p_value']:.3f}"
        lines.append(f"{name:<8} {r['n_images']:>6}  {_plain(r['estimate_a']):>{width}}  "
                     f"{_plain(r['estimate_b']):>{width}}  {_signed(r['difference']):>7}  {interval:>17}  {p:>6}")
    lines.append(f"p: two-sided, from the bootstrap distribution of the difference centred on the observed one; its "
                 f"smallest value is 1/(N+1) = {1 / (report['n_resamples'] + 1):.4f}")
    if report["unpaired_seeds"]:
        lines.append(f"left out (only one of the two rows has them): seeds {report['unpaired_seeds']}")
    return "\n".join(lines)


def _compare(args: argparse.Namespace) -> int:
    from spatialspec.study.compare import compare_rows  # heavy imports only when the command runs

    comparison = compare_rows(args.results, args.a, args.b, score=args.score, figure=args.figure,
                              n_resamples=args.bootstrap, seed=args.seed)
    report = comparison.to_dict()
    print(json.dumps(report, indent=1) if args.json else format_comparison(report))
    return 0
