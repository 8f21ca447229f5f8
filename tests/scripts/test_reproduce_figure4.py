"""scripts/reproduce_figure4.py (Sec. 5.2, Fig. 4, Table 4): the summary and table helpers on made-up records, and
(slow) the whole script on a tiny setting, resumed."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from tests.scripts.helpers import ROOT, load_script

SCRIPT = ROOT / "scripts" / "reproduce_figure4.py"


def _script():
    return load_script("reproduce_figure4")


def _record(level, model, n, seed, robust, overall=0.9, score="mean"):
    return {"level": level, "model": model, "location_labels": n, "seed": seed, "robust_auroc": robust,
            "overall_auroc": overall, "score": score}


def test_summary_and_table4_by_hand():
    script = _script()
    results = [_record("seg", "pixel", 5, 0, 0.5), _record("seg", "pixel", 5, 1, 0.7),
               _record("seg", "ssl", 5, 0, 0.9), _record("seg", "pixel", 10, 0, 1.0),
               _record("seg", "pixel", 5, 2, 0.0),  # a seed outside the requested ones
               _record("seg", "pixel", 5, 0, 0.0, score="max"), _record("binary", "pixel", None, 0, 0.1)]
    rows = script.summarize_figure4(results, ["seg-erm", "seg-ssl", "binary-erm"], [5, 10], [0, 1])
    assert [(r["method"], r["location_labels"], r["n_seeds"]) for r in rows] == [
        ("Seg-ERM", 5, 2), ("Seg-ERM", 10, 1), ("Seg-SSL", 5, 1), ("Seg-SSL", 10, 0), ("Binary-ERM", None, 1)]
    assert rows[0]["robust_auroc_mean"] == pytest.approx(0.6) and rows[0]["robust_auroc_std"] == pytest.approx(0.1)
    table = script.table4_markdown(rows, [5, 10], m=150)
    lines = table.splitlines()
    assert lines[0] == "| method | 5 (30x fewer) | 10 (15x fewer) |"
    assert lines[2] == "| Seg-ERM | 0.600 ± 0.100 | 1.000 ± 0.000 |"
    assert lines[3] == "| Seg-SSL | 0.900 ± 0.000 | - |"
    assert lines[4] == "| Binary-ERM (all 150) | 0.100 ± 0.000 | 0.100 ± 0.000 |"


def test_method_budgets_leave_runs_out():
    script = _script()
    args = script.parse_args(["--budgets", "5", "10", "20", "--seeds", "0", "--method-budgets", "seg-ssl=5,10"])
    runs = script.method_runs(script.study_runs(script.study_config(args)), args.budgets_of)
    keys = [r.key for r in runs]
    assert [k for k in keys if "-ssl-" in k] == ["seg-ssl-n5-s0", "seg-ssl-n10-s0"]
    assert [k for k in keys if "-spl-" in k] == ["seg-spl-n5-s0", "seg-spl-n10-s0", "seg-spl-n20-s0"]
    assert "binary-pixel-s0" in keys and len(keys) == 3 + 3 + 2 + 3 + 1
    for bad in ("seg-ssl=40", "binary-erm=5", "nope=5", "seg-ssl="):
        with pytest.raises(SystemExit):
            script.parse_args(["--budgets", "5", "10", "--method-budgets", bad])


def test_budgets_above_the_training_size_are_rejected(capsys):
    script = _script()
    assert script.main(["--budgets", "5", "500", "--out", "unused"]) == 2
    assert "500" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_reproduction_writes_every_output_and_resumes(tmp_path):
    out = tmp_path / "figure4"
    argv = [sys.executable, str(SCRIPT), "--out", str(out), "--budgets", "4", "8", "--seeds", "0", "--epochs", "1",
            "--synthetic", "m=20", "n=16", "a=4", "b=4", "n_val=10", "n_test=20", "mu_y=0.5",
            "--method-budgets", "seg-spl=4"]
    first = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    # 3 location methods x 2 budgets, Seg-SPL at budget 4 only, Binary-ERM once
    assert sorted(r["run_key"] for r in results) == sorted(
        [f"{level}-{model}-n{n}-s0" for level, model in (("seg", "pixel"), ("bbox", "pixel"), ("seg", "ssl"))
         for n in (4, 8)] + ["seg-spl-n4-s0", "binary-pixel-s0"])
    with open(out / "figure4.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    seg4 = next(r for r in rows if r["method"] == "Seg-SSL" and r["location_labels"] == "4")
    record = next(r for r in results if r["run_key"] == "seg-ssl-n4-s0")
    assert float(seg4["robust_auroc_mean"]) == pytest.approx(record["robust_auroc"])
    assert f"{record['robust_auroc']:.3f} ± 0.000" in (out / "table4.md").read_text()
    for name in ("figure4_robust.png", "figure4_overall.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert (out / "runs" / "seg-ssl-n4-s0" / "pseudo_labels.npz").is_file()

    second = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0
    assert second.stdout.count("done, skipped") == 8
    assert json.loads((out / "results.json").read_text()) == results
