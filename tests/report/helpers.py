"""A small study folder written by hand (no training): records with per-image predictions, summary.csv with
bootstrap intervals, study.json, and a saliency audit with one PNG figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from spatialspec.metrics import subgroup_aurocs
from spatialspec.metrics.bootstrap import subgroup_counts
from spatialspec.study.predictions import predictions_filename, write_predictions
from spatialspec.study.report import summarize, write_summary_csv

#: (level, model, label budgets); every row of the study is one of these with each budget
ROWS = (("binary", "pixel", (None,)), ("seg", "pixel", (5, 10)), ("bbox", "pixel", (5, 10)))
SEEDS = (0, 1)
SCORES = ("mean", "max")
HOSTILE = '<script>alert("x")</script>&'


def tiny_png(width: int = 24, height: int = 16) -> bytes:
    """A real PNG (matplotlib's writer) of ``width`` x ``height`` pixels."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    plt.imsave(buffer, np.linspace(0, 1, width * height).reshape(height, width), format="png")
    return buffer.getvalue()


def make_records(study: Path, with_predictions: bool = True) -> list[dict[str, Any]]:
    """Records of a study with a shortcut-reading binary level and location levels at two label budgets."""
    records = []
    for level, model, budgets in ROWS:
        for budget in budgets:
            for seed in SEEDS:
                rng = np.random.default_rng([seed, len(level), budget or 0])
                y, s = rng.integers(0, 2, 60), rng.integers(0, 2, 60)
                signal = (budget or 0) / 5.0 * y + (2.0 * s if level == "binary" else 0.0)
                key = f"{level}-{model}{'' if budget is None else f'-n{budget}'}-s{seed}"
                for score in SCORES:
                    values = rng.normal(size=60) + signal
                    rel = f"runs/{key}/{predictions_filename(score)}"
                    if with_predictions:
                        write_predictions(study / rel, [f"test_{i:05d}" for i in range(60)], y, s, values)
                    records.append({"level": level, "model": model, "score": score, "seed": seed,
                                    "location_labels": budget, "run_key": key, "predictions": rel,
                                    "run_id": f"run{key}", "epochs": 2, "select": "val_loss", "best_epoch": 1,
                                    "epochs_trained": 2, "converged": False, "wall_s": 1.5, "bootstrap": 50,
                                    "fingerprint": "f" * 64, "subgroup_counts": subgroup_counts(y, s),
                                    **subgroup_aurocs(values, y, s)})
    return records


def make_study(root: Path, saliency: bool = True) -> Path:
    """A study folder under ``root``: results.json, summary.csv (intervals from 50 resamples), study.json with a
    hostile experiment name, and ``saliency/`` with saliency.json and one figure."""
    study = root / "study"
    records = make_records(study)
    (study / "results.json").write_text(json.dumps(records))
    write_summary_csv(summarize(records, out_dir=study), study / "summary.csv")
    params = {"levels": ["binary", "seg", "bbox"], "seeds": list(SEEDS), "scores": list(SCORES), "epochs": 2,
              "synthetic": {"n": 16, "m": 24, "mu_a": 2.0}, "datalist": None, "experiment_name": HOSTILE,
              "location_labels": [5, 10]}
    (study / "study.json").write_text(json.dumps(params))
    if saliency:
        write_saliency(study / "saliency")
    return study


def write_saliency(folder: Path) -> None:
    """A saliency audit as `spatialspec audit --saliency` writes it: rows, summary and one PNG figure."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "figures").mkdir(exist_ok=True)
    (folder / "figures" / "binary-s0.png").write_bytes(tiny_png())
    shares = {"share_spurious": 0.6, "share_abnormality": 0.1, "share_elsewhere": 0.3}
    content = {
        "rows": [{"level": "binary", "model": "pixel", "seed": 0, "run": "binary-pixel-s0", "n_images": 8, **shares},
                 {"level": "seg", "model": "pixel", "seed": 0, "run": "seg-pixel-s0", "n_images": 8,
                  "share_spurious": None, "share_abnormality": None, "share_elsewhere": None}],
        "summary": [{"level": "binary", "model": "pixel", "n_seeds": 1, "share_spurious_mean": 0.6,
                     "share_spurious_std": 0.0, "share_abnormality_mean": 0.1, "share_abnormality_std": 0.0,
                     "share_elsewhere_mean": 0.3, "share_elsewhere_std": 0.0}],
        "figures": [{"path": "figures/binary-s0.png", "level": "binary", "model": "pixel", "seed": 0,
                     "caption": f"Grad-CAM overlay {HOSTILE}"}],
    }
    (folder / "saliency.json").write_text(json.dumps(content))
