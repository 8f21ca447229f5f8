"""The report page: one self-contained HTML file (inline CSS, figures as base64 data URIs, no script, no external
request), every value from the results escaped (:func:`html.escape`)."""

from __future__ import annotations

import base64
import datetime
import html
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from spatialspec.atomic import atomic_write
from spatialspec.errors import InputError

from .data import ReportData

__all__ = ["render_report", "write_report", "HEADLINE_FIGURES", "SALIENCY_SHARES"]

HEADLINE_FIGURES = ("robust_auroc", "overall_auroc", "worst_pair_auroc")
SALIENCY_SHARES = ("spurious", "abnormality", "elsewhere")
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_RUN_FIELDS = ("run_key", "level", "model", "location_labels", "seed", "epochs", "select", "best_epoch",
               "epochs_trained", "converged", "wall_s", "fingerprint", "run_id")
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;
line-height:1.4;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.text,th.text{text-align:left}
tbody tr:nth-child(even){background:#fafafa}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}.note{color:#8a4b00;font-size:.9em}.meta{color:#555;font-size:.9em}
code{font-size:.9em}
"""


def _e(value: Any) -> str:
    """``value`` as escaped text (``-`` for a missing value, 3 decimals for a float)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return html.escape(str(value))


def _mean_std(mean: Any, std: Any) -> str:
    return "-" if mean is None else f"{_e(mean)} &plusmn; {_e(std)}"


def _interval(low: Any, high: Any) -> str:
    if low is None or high is None:
        return "-"
    return f"[{_e(float(low))}, {_e(float(high))}]"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], text_columns: int = 1, css_id: str = "",
           row_attrs: Sequence[str] | None = None) -> str:
    """A table of already-escaped cells; the first ``text_columns`` columns are left-aligned."""
    def cls(i: int) -> str:
        return ' class="text"' if i < text_columns else ""

    head = "".join(f"<th{cls(i)}>{h}</th>" for i, h in enumerate(headers))
    body = []
    for j, row in enumerate(rows):
        attrs = f" {row_attrs[j]}" if row_attrs else ""
        body.append(f"<tr{attrs}>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(row)) + "</tr>")
    ident = f' id="{css_id}"' if css_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(data: bytes, mime: str, alt: str, caption: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return (f'<figure><img src="data:{mime};base64,{encoded}" alt="{html.escape(alt, quote=True)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _results_section(rows: Sequence[dict[str, Any]]) -> str:
    from spatialspec.study.report import row_label

    headers = ["level / method", "score", "seeds"]
    for figure in HEADLINE_FIGURES:
        name = figure.replace("_auroc", " AUROC").replace("_", " ")
        headers += [f"{name} (mean &plusmn; std)", f"{name} 95% CI"]
    cells = []
    for r in rows:
        line = [_e(row_label(r)), _e(r["score"]), _e(r.get("n_seeds"))]
        for figure in HEADLINE_FIGURES:
            line += [_mean_std(r.get(f"{figure}_mean"), r.get(f"{figure}_std")),
                     _interval(r.get(f"{figure}_ci_low"), r.get(f"{figure}_ci_high"))]
        cells.append(line)
    attrs = [f'data-level="{html.escape(row_label(r))}" data-score="{html.escape(str(r["score"]))}"' for r in rows]
    return ("<h2>Results per level, method and score</h2><p class=meta>Test split; mean and standard deviation over "
            "seeds (training); 95% CI: bootstrap interval of the mean over seeds (test images, stratified by (y, s)); "
            "<code>-</code> where the study computed none.</p>" + _table(headers, cells, 2, "results", attrs))


def _pair_title(name: str) -> str:
    """``auroc_y0s0_y1s0`` as ``y=0,s=0 vs y=1,s=0`` (negatives vs positives)."""
    negative, positive = name[len("auroc_"):].split("_")
    return " vs ".join(f"y={group[1]},s={group[3]}" for group in (negative, positive))


def _pairs_section(records: Sequence[dict[str, Any]]) -> str:
    from spatialspec.metrics.robust_auroc import PAIR_NAMES
    from spatialspec.stats import nan_mean_std
    from spatialspec.study.report import row_label

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((row_label(record), record["score"]), []).append(record)
    cells = []
    for (label, score), members in groups.items():
        line = [_e(label), _e(score), _e(len(members))]
        for name in PAIR_NAMES:
            values = [m.get(name) for m in members]
            line.append(_mean_std(*nan_mean_std(values)) if None not in values else "-")
        counts = members[0].get("subgroup_counts")
        line.append(_e(", ".join(f"{k}: {v}" for k, v in counts.items())) if isinstance(counts, dict) else "-")
        cells.append(line)
    headers = ["level / method", "score", "seeds", *map(_pair_title, PAIR_NAMES), "test images per (y, s), first seed"]
    return ("<h2>Pair AUROCs per subgroup</h2><p class=meta>AUROC of the negatives of one (y, s) subgroup against "
            "the positives of another (Sec. 5.1; the worst-pair AUROC is the smallest), mean &plusmn; std over "
            "seeds.</p>" + _table(headers, cells, 2, "pairs"))


def _figures_section(data: ReportData) -> str:
    from spatialspec.cost.planner import BudgetPlanner

    from . import figures

    params = data.params or {}
    title = "synthetic data (Sec. 3.2.2)" if not params.get("datalist") else Path(str(params["datalist"])).name
    parts = ["<h2>Figures</h2>", _img(figures.robust_auroc_png(data.rows, title=title), "image/png",
                                      "robust and overall AUROC per level",
                                      "Robust (red) and overall (blue) AUROC per level, mean over seeds; black bars: "
                                      "95% CI of the mean (or one std without intervals), grey: one std over seeds.")]
    score = data.rows[0]["score"] if data.rows else "mean"
    synthetic = params.get("synthetic") if not params.get("datalist") else None
    training_size = synthetic.get("m") if isinstance(synthetic, dict) else None
    try:
        curves = figures.label_curves(data.records, score, training_size)
    except ValueError as e:
        curves, note = [], f"label-budget curves left out: {e}"
        data.notes += [] if note in data.notes else [note]
    if curves:
        parts.append(_img(figures.label_budget_png(curves), "image/png", "label-budget curves",
                          f"Robust AUROC (score {score}) against the location-labelled training samples; error bars "
                          "one std over seeds; dashed: image labels only."))
        points = figures.frontier_points(curves, BudgetPlanner(curves))
        parts.append(_img(figures.frontier_png(points), "image/png", "cost-robustness frontier",
                          "Extra annotation cost of each measured option and budget (Sec. 4.1 cost model, every "
                          "labelled image priced as a positive one) against its robust AUROC; the step line is the "
                          "frontier."))
        parts.append(_table(["option", "location labels", "extra cost ($)", "robust AUROC", "on the frontier"],
                            ([_e(p["option"]), _e(p["n"]), f"{p['cost']:,.2f}", _e(p["robust_auroc"]),
                              "yes" if p["frontier"] else ""] for p in points), 1, "frontier"))
    return "".join(parts)


def _params_section(params: dict[str, Any] | None) -> str:
    if not params:
        return "<h2>Data and study settings</h2><p class=note>No study.json: the study's settings are unknown.</p>"
    data_part = ("<p>Data set: datalist <code>" + _e(params["datalist"]) + "</code></p>") if params.get("datalist") \
        else "<h3>Data model (synthetic, Sec. 3.2.2)</h3>" + _table(
            ["parameter", "value"], ([_e(k), _e(v)] for k, v in (params.get("synthetic") or {}).items()), 1,
            "data-model")
    settings = [[_e(k), _e(", ".join(map(str, v)) if isinstance(v, list) else json.dumps(v) if isinstance(v, dict)
                             else v)] for k, v in params.items() if k not in ("synthetic", "datalist", "tune")]
    return ("<h2>Data and study settings</h2>" + data_part + "<h3>Study settings</h3>"
            + _table(["setting", "value"], settings, 2, "settings") + _tuning_section(params.get("tune")))


def _tuning_section(tune: dict[str, Any] | None) -> str:
    """The settings tuned on validation (``spatialspec study --tune``): every value tried, the validation figure the
    selection rule read, and the value chosen (``study.json``'s ``tune`` entry)."""
    if not tune:
        return ""
    trials = tune.get("trials") or []
    cells = [[_e(t.get("run_key")), _e(", ".join(f"{k}={v}" for k, v in (t.get("tuned") or {}).items())),
              _e(t.get("key_metric")), _e(t.get("best_key_metric")), "yes" if t.get("chosen") else ""] for t in trials]
    grid = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in (tune.get("grid") or {}).items())
    meta = (f"<p class=meta>Grid {_e(grid)}, each value trained at seed {_e(tune.get('seed'))} and "
            f"{_e(tune.get('budget') or 'all')} location labels, chosen by <code>{_e(tune.get('select'))}</code> on "
            "the validation split; every other run trains with the chosen value.</p>")
    if not trials:
        return "<h3>Tuned on validation</h3>" + meta + "<p class=note>No tuning run has finished yet.</p>"
    return ("<h3>Tuned on validation</h3>" + meta
            + _table(["tuning run", "value", "validation figure", "best value", "chosen"], cells, 2, "tuning"))


def _runs_section(records: Sequence[dict[str, Any]], parent_run_id: str | None) -> str:
    runs: dict[Any, dict[str, Any]] = {}
    for record in records:  # one line per run: its records differ only by score
        runs.setdefault(record.get("run_key") or (record["level"], record.get("model"), record["seed"]), record)
    cells = [[_e(r.get(k)) if k != "fingerprint" else _e((r.get(k) or "")[:12] or None) for k in _RUN_FIELDS]
             for r in runs.values()]
    parent = f"<p>MLflow parent run: <code>{_e(parent_run_id)}</code></p>" if parent_run_id else ""
    return ("<h2>Runs</h2>" + parent + _table([f.replace("_", " ") for f in _RUN_FIELDS], cells, 3, "runs"))


def _saliency_section(data: ReportData) -> str:
    if data.saliency is None:
        return ""
    headers = ["level", "model", "seeds", *(f"share on {s} (mean &plusmn; std)" for s in SALIENCY_SHARES)]
    cells = [[_e(r.get("level")), _e(r.get("model")), _e(r.get("n_seeds")),
              *(_mean_std(r.get(f"share_{s}_mean"), r.get(f"share_{s}_std")) for s in SALIENCY_SHARES)]
             for r in data.saliency["summary"]]
    parts = ["<h2>Where the model looks (saliency)</h2><p class=meta>Share of positive saliency mass on the spurious "
             "block, on the abnormality and elsewhere (<code>spatialspec audit --saliency</code>).</p>",
             _table(headers, cells, 2, "saliency")]
    for figure in data.saliency["figures"]:
        path = Path(data.saliency_dir or ".") / figure["path"]
        mime = _IMAGE_TYPES.get(path.suffix.lower())
        where = f"{figure.get('level')} / {figure.get('model')} / seed {figure.get('seed')}"
        if mime is None or not path.is_file():
            reason = "not a PNG or JPEG" if mime is None else "missing"
            parts.append(f"<p class=note>saliency figure {_e(figure['path'])} ({_e(where)}): {reason}</p>")
            continue
        parts.append(_img(path.read_bytes(), mime, f"saliency {where}", f"{where}: {figure.get('caption') or ''}"))
    return "".join(parts)


def render_report(data: ReportData, title: str = "spatialspec study report") -> str:
    """The report of ``data`` as one self-contained HTML document.

    Raises:
        InputError: when ``data`` has no record.
    """
    if not data.records or not data.rows:
        raise InputError(f"{data.source or 'the results'}: no study record to report")
    from spatialspec import __version__

    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [f"<h1>{_e(title)}</h1>",
            f"<p class=meta>Source: {_e(data.source)}<br>Generated {when} by spatialspec {_e(__version__)}; "
            f"{len(data.records)} records, {len({r.get('run_key') or id(r) for r in data.records})} runs.</p>",
            _results_section(data.rows), _pairs_section(data.records), _figures_section(data),
            _params_section(data.params), _runs_section(data.records, data.parent_run_id), _saliency_section(data)]
    notes = "".join(f"<p class=note>{_e(n)}</p>" for n in data.notes)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
            f"<style>{_CSS}</style></head>"
            f"<body>{''.join(body)}{notes}</body></html>\n")


def write_report(data: ReportData, path: str | os.PathLike, title: str = "spatialspec study report") -> Path:
    """Render the report of ``data`` and write it to ``path`` atomically."""
    return atomic_write(path, render_report(data, title))
