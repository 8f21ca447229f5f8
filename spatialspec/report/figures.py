"""The report's figures, rendered to PNG in memory: the robust AUROC per level (the study's own plot,
:func:`spatialspec.study.plot_results`), the label-budget curves (Sec. 5.2, Fig. 4) and the cost-robustness frontier
(the extra annotation cost of Sec. 4.1 against the robust AUROC reached), the last two where the study trained at
label budgets."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["robust_auroc_png", "label_curves", "label_budget_png", "frontier_png", "frontier_points"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    _pyplot().close(fig)
    return buffer.getvalue()


def _robust_auroc_axes(fig: Any, ax: Any, xlabel: str, title: str) -> bytes:
    """Label a plot of robust AUROC against ``xlabel`` and render it."""
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("robust AUROC (test), mean over seeds")
    ax.set_title(title)
    ax.legend(loc="lower right", frameon=False, fontsize=8)
    fig.tight_layout()
    return _png(fig)


def robust_auroc_png(rows: Sequence[dict[str, Any]], title: str = "") -> bytes:
    """The study's bar chart of robust and overall AUROC per level (:func:`spatialspec.study.plot_results`), as PNG
    bytes."""
    from spatialspec.study.report import plot_results

    with tempfile.TemporaryDirectory() as tmp:
        return plot_results(rows, Path(tmp) / "robust_auroc.png", title=title).read_bytes()


def label_curves(records: Sequence[dict[str, Any]], score: str, training_size: int | None) -> list[Any]:
    """The label-budget curves (:func:`spatialspec.cost.planner.curves_from_records`) of ``score``, or ``[]`` when
    no record was trained at a label budget (a study without ``--location-labels``)."""
    from spatialspec.cost.planner import curves_from_records

    if not any(r.get("location_labels") is not None for r in records):
        return []
    return curves_from_records(records, score=score, training_size=training_size)


def label_budget_png(curves: Sequence[Any]) -> bytes:
    """Robust AUROC against the number of location-labelled training samples (log scale), one line per
    location-supervised option with one-std error bars over seeds; image-label-only options as dashed lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for curve in curves:
        if curve.location_supervised:
            ax.errorbar(curve.budgets, curve.robust, yerr=curve.robust_std, marker="o", capsize=3, label=curve.option)
        else:
            ax.axhline(curve.robust[0], ls="--", color="grey", lw=1, label=f"{curve.option} (image labels)")
    ax.set_xscale("log")
    budgets = sorted({n for curve in curves if curve.location_supervised for n in curve.budgets})
    ax.set_xticks(budgets, [str(n) for n in budgets])
    ax.minorticks_off()
    return _robust_auroc_axes(fig, ax, "location-labelled training samples", "label-budget curves (Sec. 5.2)")


def frontier_points(curves: Sequence[Any], planner: Any) -> list[dict[str, Any]]:
    """Every measured (option, budget) as its extra annotation cost (``planner.cost``; 0 for image labels) and robust
    AUROC, with ``frontier`` true for the points no cheaper-or-equal point beats (the cost-robustness frontier,
    :func:`spatialspec.cost.frontier.pareto_flags`)."""
    from spatialspec.cost.frontier import EQUAL_WITHIN, pareto_flags

    points = []
    for curve in curves:
        for n, robust in zip(curve.budgets, curve.robust):
            cost = planner.cost(curve.level, n) if curve.location_supervised else 0.0
            points.append({"option": curve.option, "n": n if curve.location_supervised else None,
                           "cost": float(cost), "robust_auroc": float(robust)})
    flags = pareto_flags([p["cost"] for p in points], [p["robust_auroc"] for p in points], EQUAL_WITHIN)
    for point, flag in zip(points, flags):
        point["frontier"] = flag
    return points


def frontier_png(points: Sequence[dict[str, Any]]) -> bytes:
    """The cost-robustness frontier: every measured option and budget at its extra annotation cost (symlog dollars)
    and robust AUROC, the frontier as a step line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for option in dict.fromkeys(p["option"] for p in points):
        mine = [p for p in points if p["option"] == option]
        ax.scatter([p["cost"] for p in mine], [p["robust_auroc"] for p in mine], label=option, zorder=3)
    frontier = sorted((p for p in points if p["frontier"]), key=lambda p: p["cost"])
    if frontier:
        ax.step([p["cost"] for p in frontier], [p["robust_auroc"] for p in frontier], where="post", color="black",
                lw=1, label="frontier")
    ax.set_xscale("symlog", linthresh=1.0)
    return _robust_auroc_axes(fig, ax, "extra annotation cost over image labels ($, Sec. 4.1)",
                              "cost-robustness frontier")
