"""``spatialspec audit --saliency`` over models: one checkpoint, or every run of a study folder with the run's own
data settings and seed, written as ``saliency.json`` plus one overlay PNG per run (:mod:`spatialspec.audit.saliency`).

``saliency.json``: ``method`` (what was computed), ``rows`` (one per run: ``level``, ``model``, ``seed``, ``run``,
``share_spurious``, ``share_abnormality``, ``share_elsewhere``, ``n_images``; shares ``None`` where the data has
no known regions), ``summary`` (per level and model, mean and standard deviation over the seeds) and ``figures``
(``path`` relative to the output folder, ``level``, ``model``, ``seed``, ``caption``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spatialspec.atomic import write_json_atomic
from spatialspec.errors import InputError

__all__ = ["SaliencyRun", "run_name", "saliency_study_runs", "run_saliency"]


@dataclass(frozen=True)
class SaliencyRun:
    """One model to explain: where its weights are, how its network is built and which test data it was evaluated
    on (``synthetic`` parameters and ``seed``, or a ``datalist``)."""

    level: str | None
    model: str
    seed: int
    run: str
    bundle: str
    checkpoint: Path
    score: str = "mean"
    synthetic: Mapping[str, Any] = field(default_factory=dict)
    datalist: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    bundles_dir: str | None = None


def run_name(checkpoint: str | os.PathLike) -> str:
    """A file-name-safe name for a checkpoint: its run folder for ``<run>/models/model.pt``, else its stem."""
    path = Path(checkpoint)
    name = path.parent.parent.name if path.parent.name == "models" and path.parent.parent.name else path.stem
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "model"


def saliency_study_runs(study_dir: str | os.PathLike) -> list[SaliencyRun]:
    """The runs of a ``spatialspec study`` folder: one per ``run_key`` of ``results.json`` (its first record's
    headline score), its checkpoint ``runs/<run_key>/models/model.pt``, with the data settings, ``network_def``
    overrides and bundles folder of ``study.json``.

    Raises:
        InputError: naming the folder or file when it is not a study folder, or a run's missing checkpoint.
    """
    from spatialspec.study.bundles import bundle_for
    from spatialspec.study.compare import load_results

    folder = Path(study_dir).expanduser()
    records = load_results(folder)
    settings_file = folder / "study.json"
    try:
        settings = json.loads(settings_file.read_text()) if settings_file.is_file() else {}
    except (OSError, ValueError) as e:
        raise InputError(f"{settings_file}: cannot read the study settings: {e}") from None
    overrides = {k: v for k, v in (settings.get("overrides") or {}).items() if str(k).startswith("network_def")}
    runs: dict[str, SaliencyRun] = {}
    for record in records:
        key = str(record.get("run_key") or "")
        if not key:
            raise InputError(f"{folder / 'results.json'}: a record has no run_key (was it written by spatialspec "
                             "study?)")
        if key in runs:
            continue
        level, model = str(record["level"]), str(record.get("model", "pixel"))
        checkpoint = folder / "runs" / key / "models" / "model.pt"
        if not checkpoint.is_file():
            raise InputError(f"run {key}: checkpoint not found: {checkpoint}")
        runs[key] = SaliencyRun(level, model, int(record["seed"]), key, str(record.get("bundle") or
                                bundle_for(level, model)), checkpoint, str(record.get("score", "mean")),
                                settings.get("synthetic") or {}, settings.get("datalist"), overrides,
                                settings.get("bundles_dir"))
    return list(runs.values())


def run_saliency(runs: Sequence[SaliencyRun], out_dir: str | os.PathLike, method: str | None = None,
                 per_group: int = 2, max_share_images: int = 100, layer: str | None = None,
                 occlusion_size: int = 4, device: str | None = None, batch_size: int = 64,
                 progress: Any = None) -> dict[str, Any]:
    """Explain every run on its test split (:func:`spatialspec.audit.saliency.audit_saliency`) and write
    ``out_dir/saliency.json`` (module doc) and ``out_dir/<run>.png`` atomically.

    Args:
        method: ``gradcam``, ``input_gradient`` or ``occlusion`` for every run; ``None``: Grad-CAM for classifiers,
            occlusion for pixel-wise networks (:func:`~spatialspec.audit.saliency.default_method`).
        progress: called with each run's row once it is done.

    Returns:
        the content of ``saliency.json``.
    """
    import torch

    from spatialspec.data import load_split

    from .data import load_array
    from .model import load_network
    from .saliency import SALIENCY_METHODS, audit_saliency, default_method, is_classifier, summarize_shares

    if method is not None and method not in SALIENCY_METHODS:
        raise InputError(f"--saliency-method must be one of {', '.join(SALIENCY_METHODS)}, got {method!r}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(out_dir).expanduser()
    rows, figures, methods = [], [], {}
    for run in runs:
        entries = load_split("test", run.datalist, dict(run.synthetic), run.seed, require_mask=False)
        network = load_network(run.bundle, run.checkpoint, run.overrides, device, run.bundles_dir)
        used = method or default_method(is_classifier(network, load_array(entries[0], "image").shape))
        figure = f"{run.run}.png"
        caption = (f"{run.level or run.bundle} ({run.model}), seed {run.seed}: {used.replace('_', ' ')} "
                   f"{'of the abnormal-class logit' if used == 'gradcam' else f'of the {run.score} image score'}; "
                   "S outlined cyan, Y lime")
        shares = audit_saliency(network, entries, used, run.score, per_group, max_share_images, layer,
                                occlusion_size, batch_size, out / figure if per_group else None, caption)
        row = {"level": run.level, "model": run.model, "seed": run.seed, "run": run.run, **shares}
        rows.append(row)
        methods[run.run] = used
        if per_group:
            figures.append({"path": figure, "level": run.level, "model": run.model, "seed": run.seed,
                            "caption": caption})
        if progress is not None:
            progress(row)
    content = {"method": {"per_run": methods, "score": {r.run: r.score for r in runs}, "per_group": per_group,
                          "max_share_images": max_share_images, "gradcam_layer": layer or "auto (deepest >= 8x8)",
                          "occlusion_size": occlusion_size,
                          "shares": "positive saliency mass on S / on Y (a pixel in both counts as S) / elsewhere "
                                    "over the total, per image, averaged over the test images with both masks"},
               "rows": rows, "summary": summarize_shares(rows), "figures": figures}
    write_json_atomic(out / "saliency.json", content)
    return content
