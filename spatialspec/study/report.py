"""Study reports: ``summary.csv`` (mean, std and 95% interval per level), ``robust_auroc.png`` and the console
table."""

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

__all__ = ["summarize", "mix_label", "write_summary_csv", "plot_results", "format_table", "row_label",
           "SUMMARY_FIGURES", "convergence_warning"]

SUMMARY_FIGURES = ("robust_auroc", "overall_auroc", "worst_pair_auroc")


def row_label(record: dict[str, Any]) -> str:
    """How a record's level is shown: ``binary (classifier)`` for the classifier, ``binary (jtt)`` for a baseline,
    ``seg (ssl)`` for a method, the level name otherwise; `` n=40`` follows when the run had a label budget."""
    label = option_name(record["level"], record.get("model", "pixel"))
    budget, mix = record.get("location_labels"), record.get("location_mix")
    if mix:
        return f"{label} {mix if isinstance(mix, str) else mix_label(mix)}"
    return label if budget is None else f"{label} n={budget}"


def mix_label(mix: dict[str, int] | None) -> str:
    """A mixed-supervision run's mix of location labels as ``seg=20,bbox=60`` (``""`` for any other run)."""
    return ",".join(f"{level}={n}" for level, n in (mix or {}).items())


def summarize(records: Sequence[dict[str, Any]], out_dir: str | os.PathLike | None = None,
              bootstrap: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """Mean and standard deviation (ddof=0, NaN-aware) over seeds per (level, model, label budget, score), in the
    order first seen, and the 95% bootstrap interval of the mean over seeds.

    The interval (``<figure>_ci_low`` / ``<figure>_ci_high``) is that of the reported mean, the mean over seeds of
    each seed's figure (Sec. 3.3.2 reports means over seeds): every bootstrap resample redraws each seed's test images
    within their (y, s) subgroups, from the per-image predictions the study saved, and averages the seeds' figures
    (:func:`spatialspec.metrics.seed_mean_interval`). It is neither the mean of the per-seed bounds (which is the
    width of one seed's interval, too wide for a mean of several) nor the AUROC of the seeds' predictions pooled into
    one set (which would rank one model's scores against another model's, on no common scale). It covers test-set
    sampling for the trained models; the standard deviation next to it covers the training seeds.

    Args:
        records: study records (:func:`spatialspec.study.run_training`).
        out_dir: the study folder the records' ``predictions`` paths are relative to; without it, or for a group
            where a predictions file is missing or ``bootstrap`` is 0, the interval fields are ``None``.
        bootstrap: resamples for the interval (default: the records' own ``bootstrap``, 0 when they have none).
        seed: seed of the resampling generator.

    Returns:
        rows with ``level``, ``model``, ``score``, ``n_seeds``, ``location_labels`` (the label budget, ``None`` for
        all samples), ``<figure>_mean`` / ``<figure>_std`` / ``<figure>_ci_low`` / ``<figure>_ci_high`` for the
        robust, overall and worst-pair AUROC, and ``wall_s_mean`` / ``wall_s_std``; a mixed-supervision mix
        (``mixed:seg=20,bbox=60``) is its own row, with ``location_mix`` (``seg=20,bbox=60``).
    """
    groups: dict[tuple[str, str, Any, str, str], list[dict[str, Any]]] = {}
    for record in records:
        key = (record["level"], record.get("model", "pixel"), record.get("location_labels"), record["score"],
               mix_label(record.get("location_mix")))
        groups.setdefault(key, []).append(record)
    rows = []
    for (level, model, budget, score, mix), members in groups.items():
        row: dict[str, Any] = {"level": level, "model": model, "score": score, "n_seeds": len(members),
                               "location_labels": budget, **({"location_mix": mix} if mix else {})}
        for figure in SUMMARY_FIGURES:
            row[f"{figure}_mean"], row[f"{figure}_std"] = nan_mean_std([m[figure] for m in members])
        row.update(_seed_mean_intervals(members, out_dir, bootstrap, seed))
        row["wall_s_mean"], row["wall_s_std"] = nan_mean_std([m["wall_s"] for m in members])
        rows.append(row)
    return rows


def _seed_mean_intervals(members: Sequence[dict[str, Any]], out_dir: str | os.PathLike | None,
                         bootstrap: int | None, seed: int) -> dict[str, float | None]:
    """``<figure>_ci_low`` / ``_ci_high`` of the seed mean for :func:`summarize` (``None`` when not computable)."""
    from spatialspec.metrics.bootstrap import seed_mean_interval

    from .predictions import read_predictions

    fields: dict[str, float | None] = {f"{f}_ci_{b}": None for f in SUMMARY_FIGURES for b in ("low", "high")}
    n = bootstrap if bootstrap is not None else min(int(m.get("bootstrap") or 0) for m in members)
    if out_dir is None or n <= 0 or any(not m.get("predictions") for m in members):
        return fields
    paths = [Path(out_dir) / m["predictions"] for m in members]
    if not all(p.is_file() for p in paths):
        return fields
    samples = [(p.score, p.y, p.s) for p in map(read_predictions, paths)]
    for figure in SUMMARY_FIGURES:
        fields[f"{figure}_ci_low"], fields[f"{figure}_ci_high"] = seed_mean_interval(samples, figure, n, seed)
    return fields


def write_summary_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write :func:`summarize` rows as CSV (atomically)."""
    buffer = io.StringIO()
    # every row's fields, in the order first seen (a mix row adds location_mix)
    fields = list(dict.fromkeys(key for row in rows for key in row)) or ["level"]
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write(path, buffer.getvalue())


def _error_bars(rows: Sequence[dict[str, Any]], figure: str) -> np.ndarray | None:
    """Asymmetric error bars (2, n) from the rows' 95% interval of ``figure``; ``None`` when a row has none."""
    lows, highs = [r.get(f"{figure}_ci_low") for r in rows], [r.get(f"{figure}_ci_high") for r in rows]
    if any(v is None for v in (*lows, *highs)):
        return None
    means = np.array([r[f"{figure}_mean"] for r in rows], dtype=float)
    bars = np.array([means - np.array(lows, dtype=float), np.array(highs, dtype=float) - means])
    return np.clip(np.nan_to_num(bars, nan=0.0), 0.0, None)


def plot_results(rows: Sequence[dict[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """Bar chart of robust and overall AUROC per level, one panel per score: bars at the mean over seeds, black error
    bars the 95% bootstrap interval of that mean (test images, see :func:`summarize`) and grey ticks one standard
    deviation over seeds (training); without intervals (``--bootstrap 0``) the black bars are the standard deviation.
    """
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
            means, stds = [r[f"{figure}_mean"] for r in panel], [r[f"{figure}_std"] for r in panel]
            interval = _error_bars(panel, figure)
            ax.bar(x + offset, means, width=0.4, color=color, label=figure.replace("_auroc", " AUROC"))
            first = figure == "robust_auroc"
            if interval is None:
                ax.errorbar(x + offset, means, yerr=stds, fmt="none", ecolor="black", capsize=3,
                            label="std over seeds" if first else None)
            else:
                ax.errorbar(x + offset, means, yerr=interval, fmt="none", ecolor="black", capsize=3,
                            label="95% CI of the mean (test images)" if first else None)
                ax.errorbar(x + offset + 0.08, means, yerr=stds, fmt="none", ecolor="grey", elinewidth=1.5,
                            label="std over seeds" if first else None)
        ax.set_xticks(x, [row_label(r) for r in panel], rotation=20)
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"score: {score}")
        ax.set_xlabel("spatial specificity")
    axes[0][0].set_ylabel("AUROC (test), mean over seeds")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: not labels[i].endswith("AUROC"))  # the bars, then the error bars
    axes[0][-1].legend([handles[i] for i in order], [labels[i] for i in order], loc="upper left",
                       bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure_atomic(fig, path)


def _interval(row: dict[str, Any], figure: str) -> str:
    low, high = row.get(f"{figure}_ci_low"), row.get(f"{figure}_ci_high")
    return "-" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of the summary: level, score, seeds, robust AUROC as mean +- std and its 95% interval
    (``-`` without one), overall and worst-pair AUROC as mean +- std."""
    header = (f"{'level':<22} {'score':<9} {'seeds':>5}  {'robust AUROC':>15} {'95% CI':>14}  {'overall AUROC':>15}  "
              f"{'worst pair':>15}")
    lines = [header, "-" * len(header)]
    for r in rows:
        cells = [f"{r[f'{f}_mean']:.3f} +- {r[f'{f}_std']:.3f}" for f in SUMMARY_FIGURES]
        lines.append(f"{row_label(r):<22} {r['score']:<9} {r['n_seeds']:>5}  {cells[0]:>15} "
                     f"{_interval(r, 'robust_auroc'):>14}  {cells[1]:>15}  {cells[2]:>15}")
    return "\n".join(lines)


def convergence_warning(records: Sequence[dict[str, Any]], patience: int) -> str | None:
    """One line naming the runs that did not converge (records with ``converged`` false: the validation loss was
    still improving within the last ``patience`` epochs), or ``None`` when every run converged.

    Args:
        records: study records (:func:`spatialspec.study.run_training`), one or more per run.
        patience: the study's ``patience``, quoted in the line.
    """
    runs = list(dict.fromkeys(r.get("run_key", "?") for r in records))
    late = list(dict.fromkeys(r.get("run_key", "?") for r in records if r.get("converged") is False))
    if not late:
        return None
    return (f"warning: {len(late)} of {len(runs)} runs did not converge (validation loss still improving within the "
            f"last {patience} epochs): {', '.join(late)}; train longer (--epochs) or with --until-converged")
