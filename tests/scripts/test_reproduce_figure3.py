"""scripts/reproduce_figure3.py: the level of each r, and (slow) the whole script on a tiny setting, resumed."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spatialspec.transforms import specificity_supervision
from tests.scripts.helpers import ROOT, load_script

SCRIPT = ROOT / "scripts" / "reproduce_figure3.py"


def _script():
    return load_script("reproduce_figure3")


def test_level_for_r_gives_the_same_labels_as_dilate():
    script = _script()
    assert [script.level_for_r(r, 40) for r in (1, 2, 2.5, 20, 40)] == ["binary", "dilate:2", "dilate:2.5",
                                                                        "dilate:20", "seg"]
    # binary and seg are dilate:1 and dilate:n (Sec. 3.1), on normal and abnormal images
    masks = np.zeros((3, 1, 12, 12), np.float32)
    masks[1, 0, 2:5, 3:6] = 1
    masks[2, 0, 8:11, 0:3] = 1
    for r, level in ((1, "binary"), (12, "seg")):
        np.testing.assert_array_equal(specificity_supervision(masks, level),
                                      specificity_supervision(masks, f"dilate:{r}"))
    for bad in (0, -1, 41):
        with pytest.raises(ValueError, match="0 < r <= n = 40"):
            script.level_for_r(bad, 40)


def test_figure3_rows_normalise_the_variance():
    script = _script()
    measures = [{"gamma": 0.1, "var_empirical": 4.0, "var_closed": 8.0, "mi_empirical": 0.1, "mi_closed": 0.2},
                {"gamma": 1.0, "var_empirical": 1.0, "var_closed": 2.0, "mi_empirical": 0.0, "mi_closed": 0.0}]
    results = [{"level": "binary", "seed": 0, "score": "mean", "robust_auroc": 0.2, "overall_auroc": 0.6},
               {"level": "binary", "seed": 1, "score": "mean", "robust_auroc": 0.4, "overall_auroc": 0.8},
               {"level": "binary", "seed": 2, "score": "mean", "robust_auroc": 0.9, "overall_auroc": 0.9},  # not asked
               {"level": "seg", "seed": 0, "score": "mean", "robust_auroc": 1.0, "overall_auroc": 1.0}]
    rows = script.figure3_rows([1, 16], ["binary", "seg"], results, [0, 1], measures)
    assert rows[0]["n_seeds"] == 2 and rows[1]["n_seeds"] == 1
    assert rows[0]["robust_auroc_mean"] == pytest.approx(0.3) and rows[0]["robust_auroc_std"] == pytest.approx(0.1)
    assert [r["var_empirical_norm"] for r in rows] == [1.0, 0.25]
    assert [r["var_closed_norm"] for r in rows] == [1.0, 0.25]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _loop_cosine(x, y, s, a, b):
    values = [np.dot(x[i], x[j]) / (np.linalg.norm(x[i]) * np.linalg.norm(x[j]))
              for i in range(len(x)) if (y[i], s[i]) == a for j in range(len(x)) if (y[j], s[j]) == b]
    return float(np.mean(values)) if values else math.nan


@pytest.mark.slow
def test_script_on_a_tiny_setting_writes_every_output_and_resumes(tmp_path):
    pytest.importorskip("umap")
    out = tmp_path / "fig3"
    command = [sys.executable, str(SCRIPT), "--out", str(out), "--rs", "1", "16", "--seeds", "0", "--epochs", "2",
               "--samples", "40", "--synthetic", "n=16", "a=4", "b=4", "m=20", "n_val=10", "n_test=20", "mu_y=0.5"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("figure3.csv", "figure3.png", "table2.csv", "table2_runs.json", "umap_binary.png", "umap_seg.png",
                 "results.json", "embeddings/binary-pixel-s0.npz", "embeddings/seg-pixel-s0.npz"):
        assert (out / name).is_file(), name
    for name in ("figure3.png", "umap_binary.png", "umap_seg.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"

    results = json.loads((out / "results.json").read_text())
    assert sorted(r["run_key"] for r in results) == ["binary-pixel-s0", "seg-pixel-s0"]
    rows = _read_csv(out / "figure3.csv")
    assert [(r["r"], r["level"], r["n_seeds"]) for r in rows] == [("1", "binary", "1"), ("16", "seg", "1")]
    by_level = {r["level"]: r for r in results}
    for row in rows:
        assert float(row["robust_auroc_mean"]) == pytest.approx(by_level[row["level"]]["robust_auroc"])
    # variance normalised to its maximum; at r = n the positive pixels are the abnormal ones: variance sigma^2 = 1
    # up to sampling, MI 0 (Prop. 2 and 4)
    assert max(float(r["var_empirical_norm"]) for r in rows) == 1.0
    assert float(rows[1]["var_empirical"]) == pytest.approx(1.0, abs=0.15)
    assert float(rows[1]["mi_empirical"]) == 0.0 and float(rows[1]["mi_closed"]) == 0.0

    # Table 2 values equal the definition recomputed from the saved embeddings
    table = {r["level"]: r for r in _read_csv(out / "table2.csv")}
    for level in ("binary", "seg"):
        saved = np.load(out / "embeddings" / f"{level}-pixel-s0.npz")
        x, y, s = saved["embedding"].astype(np.float64), saved["y"], saved["s"]
        assert len(y) == 20
        for key, a, b in (("y0s0_y0s1", (0, 0), (0, 1)), ("y1s0_y1s1", (1, 0), (1, 1))):
            expected = _loop_cosine(x, y, s, a, b)
            means = [x[(y == g) & (s == h)].mean(axis=0) for g in (0, 1) for h in (0, 1) if ((y == g) & (s == h)).any()]
            centred = _loop_cosine(x - sum(means) / len(means), y, s, a, b)
            if math.isnan(expected):
                assert table[level][f"{key}_mean"] == "nan"
                continue
            assert float(table[level][f"{key}_mean"]) == pytest.approx(expected, abs=1e-6)
            assert float(table[level][f"{key}_std"]) == 0.0  # one seed
            assert float(table[level][f"{key}_centred_mean"]) == pytest.approx(centred, abs=1e-6)

    # a rerun trains nothing and keeps the records
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("done, skipped") == 2
    assert json.loads((out / "results.json").read_text()) == results
    # another data model in the same folder is refused
    changed = command[:-1] + ["mu_y=0.6"]
    refused = subprocess.run(changed, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert refused.returncode != 0 and "use another --out" in refused.stderr
