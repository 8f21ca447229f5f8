"""The cost-robustness frontier (beyond the paper, after Saab et al., MLHC 2022, Sec. 4.1 cost model and Sec. 5.2
label budgets): every method and label budget of a study as the extra annotation dollars it costs over image labels
and the robust AUROC it reaches, and the Pareto front of those points (no other point is as cheap and as robust).

The points come from a study's summary rows (:func:`spatialspec.study.summarize`: mean and std over seeds and the 95%
interval of the seed mean over the test images). A method on image labels only (Binary-ERM, JTT, GEORGE, DFR) costs
nothing extra; a location-supervised one pays for its budget's location labels at its level, ``positive_fraction`` of
them positive (negatives cost nothing extra, Sec. 4.1); a mixed-supervision mix pays for each level's labels. What
the cost model does not price is said in the points: ``reads_spurious`` names the methods that read the spurious
label s on the validation split (DFR fits on it), which a team must annotate too.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from spatialspec.atomic import atomic_write, save_figure_atomic
from spatialspec.levels import parse_level
from spatialspec.registry import method_for_run

from .model import AnnotationCostModel
from .planner import option_name

__all__ = ["FrontierPoint", "location_cost", "pareto_flags", "frontier_points", "frontier_markdown",
           "write_frontier_csv", "plot_frontier", "EQUAL_WITHIN"]

#: robust AUROCs closer than this count as equal on the front: half the last digit of the tables' three decimals, so
#: that a dearer point is not on the front by a difference no table shows
EQUAL_WITHIN = 5e-4


@dataclass(frozen=True)
class FrontierPoint:
    """One method at one label budget.

    Attributes:
        method: the option's name (:func:`spatialspec.cost.planner.option_name`, with the mix for a mixed run).
        level, model: the run's level and model.
        location_labels: the label budget (``None``: every training image, or image labels only).
        labelled: the images whose location labels are paid for (0 on image labels only).
        cost: the extra annotation cost in dollars (Sec. 4.1).
        robust_auroc, robust_std: mean and std over seeds of the test robust AUROC.
        robust_ci_low, robust_ci_high: the 95% interval of that mean over the test images (``None`` without one).
        overall_auroc: mean over seeds of the test overall AUROC.
        n_seeds: the seeds behind the means.
        wall_s: mean run time (training and test), seconds.
        time_ratio: ``wall_s`` over that of the same family's ERM run on image labels (``NaN`` without one).
        reads_spurious: ``validation`` when the run reads s on the validation split (a method that fits on it,
            like DFR, or a selection rule that reads it), else ``never``.
        pareto: whether no other point costs at most as much and reaches at least as high a robust AUROC, one of
            them strictly.
    """

    method: str
    level: str
    model: str
    location_labels: int | None
    labelled: int
    cost: float
    robust_auroc: float
    robust_std: float
    robust_ci_low: float | None
    robust_ci_high: float | None
    overall_auroc: float
    n_seeds: int
    wall_s: float
    time_ratio: float
    reads_spurious: str
    pareto: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON/CSV-ready dict."""
        return asdict(self)


def location_cost(level: str, model: str, labelled: int, positive_fraction: float = 1.0,
                  mix: dict[str, int] | None = None, cost_model: AnnotationCostModel | None = None) -> float:
    """The extra annotation dollars (Sec. 4.1) of a run's location labels: 0 for a method on image labels only
    (its registry entry's ``cost_label`` is ``binary``), else ``labelled`` images at ``level`` of which
    ``round(positive_fraction * n)`` are positive; a ``mix`` (``{"seg": 20, "bbox": 60}``) prices each level's count.

    Raises:
        ValueError: naming ``positive_fraction`` outside ``(0, 1]`` or ``labelled`` below 0.
    """
    if not 0.0 < positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction must lie in (0, 1], got {positive_fraction!r}")
    if labelled < 0:
        raise ValueError(f"labelled must be >= 0, got {labelled!r}")
    if method_for_run(level, model).cost_label == "binary" or parse_level(level).kind == "binary":
        return 0.0
    cost_model = cost_model or AnnotationCostModel()
    counts = mix or {level: labelled}
    return float(sum(cost_model.estimate(name, positives=int(round(positive_fraction * n))).extra_cost
                     for name, n in counts.items()))


def pareto_flags(costs: Sequence[float], values: Sequence[float], tolerance: float = 0.0) -> list[bool]:
    """For each point, whether no other costs at most as much and reaches at least as high a value, one of the two
    strictly (NaN values are never on the front; equal points are both on it). Values within ``tolerance`` of each
    other count as equal: a point is not beaten by another that costs as much and is higher by at most
    ``tolerance``, nor saved by being higher than a cheaper point by at most ``tolerance``."""
    flags = []
    for i, (cost, value) in enumerate(zip(costs, values)):
        dominated = math.isnan(value) or any(
            j != i and not math.isnan(v) and c <= cost and v >= value - tolerance
            and (c < cost or v > value + tolerance) for j, (c, v) in enumerate(zip(costs, values)))
        flags.append(not dominated)
    return flags


def _parse_mix(text: Any) -> dict[str, int] | None:
    if not text:
        return None
    if isinstance(text, dict):
        return {str(k): int(v) for k, v in text.items()}
    return {level: int(n) for level, _, n in (piece.partition("=") for piece in str(text).split(","))}


def _optional(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def frontier_points(rows: Sequence[dict[str, Any]], positive_fraction: float = 1.0, training_size: int | None = None,
                    cost_model: AnnotationCostModel | None = None, selection_reads_spurious: bool = False,
                    tolerance: float = EQUAL_WITHIN) -> list[FrontierPoint]:
    """The frontier's points from :func:`spatialspec.study.summarize` rows (one score: the first row's), the Pareto
    front marked, sorted by cost and then by robust AUROC (highest first).

    Args:
        rows: summary rows (``level``, ``model``, ``location_labels``, ``robust_auroc_mean`` / ``_std`` /
            ``_ci_low`` / ``_ci_high``, ``overall_auroc_mean``, ``n_seeds``, ``wall_s_mean``, optional
            ``location_mix``).
        positive_fraction: share of positive images among the location-labelled ones (the label subsets are
            class-stratified, so the data's share of positives).
        training_size: the training images a location-supervised run without a budget labelled; such rows are left
            out without it.
        cost_model: the click model (the paper's defaults).
        selection_reads_spurious: whether the study's selection rule reads s on validation (every point does then).
        tolerance: robust AUROCs closer than this count as equal on the front (:data:`EQUAL_WITHIN`).

    Raises:
        ValueError: naming ``rows`` when none is left.
    """
    if not rows:
        raise ValueError("rows: no summary row to place on the frontier")
    score = rows[0].get("score")
    rows = [r for r in rows if r.get("score") == score]
    erm_wall = {method_for_run("binary", r["model"]).family: float(r["wall_s_mean"]) for r in rows
                if parse_level(r["level"]).kind == "binary" and r["model"] in ("pixel", "classifier")}
    points = []
    for row in rows:
        level, model = row["level"], row.get("model") or "pixel"
        entry = method_for_run(level, model)
        budget = None if row.get("location_labels") in (None, "") else int(row["location_labels"])
        mix = _parse_mix(row.get("location_mix"))
        if entry.cost_label == "binary" or parse_level(level).kind == "binary":
            labelled = 0
        elif budget is not None:
            labelled = budget
        elif training_size is not None:
            labelled = int(training_size)
        else:
            continue
        name = option_name(level, model) + (f" {row['location_mix']}" if mix else "")
        wall = float(row.get("wall_s_mean", math.nan))
        points.append(FrontierPoint(
            name, level, model, budget, labelled,
            location_cost(level, model, labelled, positive_fraction, mix, cost_model),
            float(row["robust_auroc_mean"]), float(row["robust_auroc_std"]), _optional(row.get("robust_auroc_ci_low")),
            _optional(row.get("robust_auroc_ci_high")), float(row.get("overall_auroc_mean", math.nan)),
            int(row.get("n_seeds", 0)), wall, wall / erm_wall[entry.family] if entry.family in erm_wall else math.nan,
            "validation" if entry.fits_on_s or selection_reads_spurious else "never"))
    if not points:
        raise ValueError("rows: none has a label budget and no training_size was given for the 'all' runs")
    flags = pareto_flags([p.cost for p in points], [p.robust_auroc for p in points], tolerance)
    points = [FrontierPoint(**{**p.to_dict(), "pareto": flag}) for p, flag in zip(points, flags)]
    return sorted(points, key=lambda p: (p.cost, -p.robust_auroc if not math.isnan(p.robust_auroc) else math.inf))


def _interval(point: FrontierPoint) -> str:
    if point.robust_ci_low is None or point.robust_ci_high is None:
        return "-"
    return f"[{point.robust_ci_low:.3f}, {point.robust_ci_high:.3f}]"


def frontier_markdown(points: Sequence[FrontierPoint]) -> str:
    """The frontier as a Markdown table, cheapest first; Pareto points in bold, methods that read s on validation
    marked."""
    lines = ["| method | location labels | extra cost ($) | robust AUROC (mean ± std over seeds) | 95% CI of the mean "
             "(test images) | overall AUROC | run time / ERM | reads s | Pareto |", "|---" * 9 + "|"]
    for p in points:
        budget = "-" if p.labelled == 0 else str(p.labelled) if p.location_labels is None else str(p.location_labels)
        robust = f"{p.robust_auroc:.3f} ± {p.robust_std:.3f}"
        lines.append(f"| {p.method} | {budget} | {p.cost:,.2f} | {f'**{robust}**' if p.pareto else robust} | "
                     f"{_interval(p)} | {p.overall_auroc:.3f} | "
                     f"{'-' if math.isnan(p.time_ratio) else f'{p.time_ratio:.2f}'} | "
                     f"{'validation' if p.reads_spurious != 'never' else ''} | {'yes' if p.pareto else ''} |")
    return "\n".join(lines) + "\n"


def write_frontier_csv(points: Sequence[FrontierPoint], path: str | os.PathLike) -> Path:
    """Write the points as CSV (atomically)."""
    buffer = io.StringIO()
    fields = list(FrontierPoint.__dataclass_fields__)
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(p.to_dict() for p in points)
    return atomic_write(path, buffer.getvalue())


def plot_frontier(points: Sequence[FrontierPoint], path: str | os.PathLike, title: str = "") -> Path:
    """Robust AUROC against the extra annotation cost (symlog dollars, linear below $0.10; image labels at 0): one
    marker series per method joining its budgets, error bars the 95% interval of the seed mean (one std where there
    is none), the Pareto front as a step line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    markers, colors = "osD^v<>phX*P8", plt.get_cmap("tab20")
    for i, method in enumerate(dict.fromkeys(p.method for p in points)):
        mine = sorted((p for p in points if p.method == method), key=lambda p: p.cost)
        x, y = [p.cost for p in mine], [p.robust_auroc for p in mine]
        if all(p.robust_ci_low is not None and p.robust_ci_high is not None for p in mine):
            err = [[max(0.0, p.robust_auroc - p.robust_ci_low) for p in mine],
                   [max(0.0, p.robust_ci_high - p.robust_auroc) for p in mine]]
        else:
            err = [p.robust_std for p in mine]
        ax.errorbar(x, y, yerr=err, marker=markers[i % len(markers)], ms=5, lw=0.8, capsize=2, label=method,
                    ls="-" if len(mine) > 1 else "none", color=colors(i % 20))
    front = sorted((p for p in points if p.pareto), key=lambda p: p.cost)
    if front:
        ax.step([p.cost for p in front], [p.robust_auroc for p in front], where="post", color="black", lw=2,
                alpha=0.35, label="Pareto front")
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlim(left=-0.03)
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("extra annotation cost over image labels ($, Sec. 4.1 click model)")
    ax.set_ylabel("robust AUROC (test), mean over seeds")
    ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    fig.tight_layout()
    return save_figure_atomic(fig, path)
