"""Study reports: ``summary.csv`` (mean and std per level), ``robust_auroc.png`` and the console table."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spatialspec.atomic import atomic_write, save_figure_atomic
from spatialspec.cost.planner import option_name
from spatialspec.stats import nan_mean_std

__all__ = ["summarize", "write_summary_csv", "plot_results", "format_table", "row_label", "SUMMARY_FIGURES"]

SUMMARY_FIGURES = ("robust_auroc", "overall_auroc", "worst_pair_auroc")


def row_label(record: dict[str, Any]) -> str:
    """How a record's level is shown: ``binary (classifier)`` for the classifier, ``binary (jtt)`` for a baseline,
    ``seg (ssl)`` for a method, the level name otherwise; `` n=40`` follows when the run had a label budget."""
    label = option_name(record["level"], record.get("model", "pixel"))
    budget = record.get("location_labels")
    return label if budget is None else f"{label} n={budget}"


def summarize(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation (ddof=0, NaN-aware) over seeds per (level, model, label budget, score), in the
    order first seen.

    Returns:
        rows with ``level``, ``model``, ``score``, ``n_seeds``, ``location_labels`` (the label budget, ``None`` for
        all samples) and ``<figure>_mean`` / ``<figure>_std`` for the robust, overall and worst-pair AUROC, plus
        ``wall_s_mean``.
    """
    groups: dict[tuple[str, str, Any, str], list[dict[str, Any]]] = {}
    for record in records:
        key = (record["level"], record.get("model", "pixel"), record.get("location_labels"), record["score"])
        groups.setdefault(key, []).append(record)
    rows = []
    for (level, model, budget, score), members in groups.items():
        row: dict[str, Any] = {"level": level, "model": model, "score": score, "n_seeds": len(members),
                               "location_labels": budget}
        for figure in (*SUMMARY_FIGURES, "wall_s"):
            row[f"{figure}_mean"], row[f"{figure}_std"] = nan_mean_std([m[figure] for m in members])
        rows.append(row)
    return rows


def write_summary_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write :func:`summarize` rows as CSV (atomically)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0].keys()) if rows else ["level"])
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write(path, buffer.getvalue())


def plot_results(rows: Sequence[dict[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """Bar chart of robust and overall AUROC per level (mean over seeds, error bars one std), one panel per score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = list(dict.fromkeys(r["score"] for r in rows))
    fig, axes = plt.subplots(1, len(scores), figsize=(max(5.0, 1.3 * len(rows) / len(scores) + 2.5) * len(scores), 4),
                             squeeze=False, sharey=True)
    for ax, score in zip(axes[0], scores):
        panel = [r for r in rows if r["score"] == score]
        x = np.arange(len(panel))
        for offset, figure, color in ((-0.2, "robust_auroc", "tab:red"), (0.2, "overall_auroc", "tab:blue")):
            ax.bar(x + offset, [r[f"{figure}_mean"] for r in panel], width=0.4, color=color,
                   yerr=[r[f"{figure}_std"] for r in panel], capsize=3, label=figure.replace("_auroc", " AUROC"))
        ax.set_xticks(x, [row_label(r) for r in panel], rotation=20)
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"score: {score}")
        ax.set_xlabel("spatial specificity")
    axes[0][0].set_ylabel("AUROC (test)")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure_atomic(fig, path)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of the summary: level, score, seeds, robust / overall / worst-pair AUROC as mean +- std."""
    header = f"{'level':<22} {'score':<9} {'seeds':>5}  {'robust AUROC':>15}  {'overall AUROC':>15}  {'worst pair':>15}"
    lines = [header, "-" * len(header)]
    for r in rows:
        cells = [f"{r[f'{f}_mean']:.3f} +- {r[f'{f}_std']:.3f}" for f in SUMMARY_FIGURES]
        lines.append(f"{row_label(r):<22} {r['score']:<9} {r['n_seeds']:>5}  {cells[0]:>15}  {cells[1]:>15}  "
                     f"{cells[2]:>15}")
    return "\n".join(lines)
