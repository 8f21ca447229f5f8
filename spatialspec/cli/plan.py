"""``spatialspec plan``: the supervision level and number of location labels that maximise the expected robust AUROC
within an annotation budget, from measured label-budget curves (after Saab et al., Sec. 4.1 and 5.2)."""

from __future__ import annotations

import argparse
import json
import math

from spatialspec.cost.planner import BudgetPlanner, curves_from_records, load_results, records_from_mlflow

from .cost import add_cost_model_arguments, cost_model_from_args
from .types import dollars, fraction, non_negative_int

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``plan`` command."""
    parser = sub.add_parser("plan", help="best supervision level and number of location labels for a budget",
                            description="Read measured robust-AUROC-versus-location-labels curves (results.json of "
                                        "'spatialspec study --location-labels' or scripts/reproduce_figure4.py, or "
                                        "MLflow runs), interpolate them (linear in log n, no extrapolation) and "
                                        "recommend the option and number of location labels with the highest "
                                        "expected robust AUROC whose extra annotation cost over image labels (Sec. "
                                        "4.1 click model) fits the budget.")
    parser.add_argument("--budget", type=dollars, required=True, help="dollars for location annotation, on top of "
                                                                       "the image labels")
    parser.add_argument("--results", nargs="+", default=[], metavar="PATH",
                        help="results.json files or study output folders holding one")
    parser.add_argument("--mlflow", metavar="URI", help="read the runs of an MLflow tracking store instead (e.g. "
                                                        "sqlite:///runs/figure4/mlruns.db)")
    parser.add_argument("--experiment", default="spatialspec-study", help="MLflow experiment (default: %(default)s)")
    parser.add_argument("--score", default="mean", help="image score whose figures are used (default: %(default)s)")
    parser.add_argument("--positive-fraction", type=fraction, default=1.0,
                        help="share of positive images among those to label (default 1: every one priced as "
                             "positive, the paper's count of positives only)")
    parser.add_argument("--training-size", type=non_negative_int, default=None,
                        help="training images behind runs without a label budget (location_labels 'all'); those "
                             "runs are left out without it")
    add_cost_model_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=_plan)


def _fmt(value: float, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _plan(args: argparse.Namespace) -> int:
    if bool(args.results) == bool(args.mlflow):
        raise ValueError("give either --results PATH... or --mlflow URI")
    records = (records_from_mlflow(args.mlflow, args.experiment, args.score) if args.mlflow
               else load_results(args.results))
    curves = curves_from_records(records, score=args.score, training_size=args.training_size)
    model = cost_model_from_args(args)
    planner = BudgetPlanner(curves, model, positive_fraction=args.positive_fraction)
    plan = planner.plan(args.budget)
    if args.json:
        print(json.dumps({**plan.to_dict(), "positive_fraction": planner.positive_fraction, "score": args.score,
                          "curves": [{"option": c.option, "level": c.level, "budgets": list(c.budgets),
                                      "robust_auroc": list(c.robust), "robust_std": list(c.robust_std),
                                      "overall_auroc": list(c.overall), "n_seeds": list(c.n_seeds)} for c in curves]},
                         indent=1))
        return 0
    print(f"budget ${plan.budget:,.2f} for location labels on top of image labels; {model.seg_clicks:g} clicks a "
          f"mask, {model.click_seconds:g} s a click, ${model.hourly_rate:,.2f} an hour, "
          f"{planner.positive_fraction:g} of the labelled images positive")
    best = plan.best
    if best is None:
        print("recommended: none of the measured options fits the budget")
    else:
        labels = "image labels only" if best.location_labels is None else f"{best.location_labels} location labels"
        print(f"recommended: {best.option} with {labels}: expected robust AUROC {_fmt(best.robust_auroc)} "
              f"(+- {_fmt(best.robust_std)}), cost ${best.cost:,.2f}")
    header = f"{'option':<22}{'labels':>8}{'cost $':>12}{'robust AUROC':>18}{'overall AUROC':>15}  note"
    print(header)
    print("-" * len(header))
    for o in plan.options:
        labels = "none" if o.level == "binary" else "-" if o.location_labels is None else str(o.location_labels)
        cost = "-" if math.isnan(o.cost) else f"{o.cost:,.2f}"
        robust = "-" if math.isnan(o.robust_auroc) else f"{o.robust_auroc:.3f} +- {_fmt(o.robust_std)}"
        print(f"{o.option:<22}{labels:>8}{cost:>12}{robust:>18}{_fmt(o.overall_auroc):>15}  {o.note}")
    return 0
