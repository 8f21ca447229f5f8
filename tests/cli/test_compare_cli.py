"""``spatialspec compare`` on a study folder written by hand (results.json + per-image predictions; no training)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spatialspec.cli.compare import FIGURES
from spatialspec.cli.main import main
from spatialspec.metrics import FIGURE_NAMES, paired_bootstrap_difference, subgroup_aurocs
from spatialspec.study.predictions import predictions_filename, read_predictions, write_predictions

N_TEST = 120


def _test_split(seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Each seed has its own test images (as on the synthetic data), with ids that repeat across seeds."""
    rng = np.random.default_rng(100 + seed)
    return [f"test_{i:05d}" for i in range(N_TEST)], rng.integers(0, 2, N_TEST), rng.integers(0, 2, N_TEST)


def _scores(kind: str, y: np.ndarray, s: np.ndarray, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(size=len(y))
    return noise + (2.0 * s if kind == "shortcut" else 2.0 * y)


def write_study(out, rows=(("binary", "pixel", None, "shortcut"), ("seg", "pixel", None, "lesion"),
                           ("binary", "jtt", None, "lesion"), ("seg", "pixel", 20, "lesion")),
                seeds=(0, 1), scores=("mean", "topk:4")) -> list[dict]:
    """results.json and predictions files as ``spatialspec study`` lays them out."""
    records = []
    for level, model, budget, kind in rows:
        for seed in seeds:
            ids, y, s = _test_split(seed)
            key = f"{level}-{model}{'' if budget is None else f'-n{budget}'}-s{seed}"
            for score in scores:
                values = _scores(kind, y, s, seed + (10 if score != "mean" else 0))
                rel = f"runs/{key}/{predictions_filename(score)}"
                write_predictions(out / rel, ids, y, s, values)
                records.append({"level": level, "model": model, "score": score, "seed": seed,
                                "location_labels": budget, "run_key": key, "predictions": rel,
                                **subgroup_aurocs(values, y, s)})
    (out / "results.json").write_text(json.dumps(records))
    return records


def test_figure_choices_are_the_metric_figures():
    assert sorted(FIGURES) == sorted(FIGURE_NAMES)  # the CLI keeps its own copy so that parsing needs no torch


def test_predictions_round_trip(tmp_path):
    ids, y, s = _test_split(0)
    score = np.random.default_rng(0).normal(size=N_TEST).astype(np.float32)
    path = write_predictions(tmp_path / "p.csv", ids, y, s, score)
    read = read_predictions(path)
    assert read.ids == tuple(ids)
    assert np.array_equal(read.y, y) and np.array_equal(read.s, s)
    assert np.array_equal(read.score, score.astype(np.float64))  # full precision, no rounding


def test_compare_text(tmp_path, capsys):
    write_study(tmp_path)
    assert main(["compare", str(tmp_path), "--a", "binary", "--b", "seg", "--bootstrap", "200"]) == 0
    out = capsys.readouterr().out
    assert "robust AUROC, score mean: seg - binary" in out
    lines = out.splitlines()
    seed0 = next(line for line in lines if line.startswith("0 "))
    pooled = next(line for line in lines if line.startswith("mean (2)"))
    # the shortcut model against the lesion model: a large positive difference, the smallest p the test can give
    _, y, s = _test_split(0)
    expected = paired_bootstrap_difference(_scores("shortcut", y, s, 0), _scores("lesion", y, s, 0), y, s,
                                           n_resamples=200, seed=np.random.default_rng([0, 0]))
    assert f"{expected.difference:+.3f}" in seed0 and f"[{expected.ci_low:+.3f}, {expected.ci_high:+.3f}]" in seed0
    assert seed0.split()[-1] == f"{1 / 201:.3f}"
    assert str(N_TEST) in seed0 and str(2 * N_TEST) in pooled


def test_compare_json_per_seed_and_pooled(tmp_path, capsys):
    records = write_study(tmp_path)
    argv = ["compare", str(tmp_path), "--a", "seg", "--b", "binary", "--score", "topk:4", "--figure",
            "overall_auroc", "--bootstrap", "100", "--seed", "3", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["a"], report["b"], report["score"], report["figure"]) == ("seg", "binary", "topk:4",
                                                                           "overall_auroc")
    assert report["difference"] == "b - a" and report["n_resamples"] == 100
    assert [r["seed"] for r in report["per_seed"]] == [0, 1]
    for entry in report["per_seed"]:
        a = next(r for r in records if r["level"] == "seg" and r["location_labels"] is None and r["score"] == "topk:4"
                 and r["seed"] == entry["seed"])
        b = next(r for r in records if r["run_key"] == f"binary-pixel-s{entry['seed']}" and r["score"] == "topk:4")
        assert entry["estimate_a"] == pytest.approx(a["overall_auroc"])
        assert entry["difference"] == pytest.approx(b["overall_auroc"] - a["overall_auroc"])
        assert entry["ci_low"] <= entry["difference"] <= entry["ci_high"]
    pooled = report["pooled"]
    assert pooled["seeds"] == [0, 1]
    assert pooled["difference"] == pytest.approx(np.mean([r["difference"] for r in report["per_seed"]]))
    # the same seed gives the same answer
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == report


def test_compare_identical_rows_gives_p_one(tmp_path, capsys):
    write_study(tmp_path)
    assert main(["compare", str(tmp_path), "--a", "seg", "--b", "binary (jtt)", "--bootstrap", "50", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)  # both read the lesion with the same noise
    assert report["pooled"]["difference"] == 0.0 and report["pooled"]["p_value"] == 1.0


@pytest.mark.parametrize("name, label", [("jtt", "binary (jtt)"), ("Binary  (JTT)", "binary (jtt)"),
                                         ("seg n=20", "seg n=20"), ("SEG", "seg")])
def test_row_names(tmp_path, capsys, name, label):
    write_study(tmp_path)
    assert main(["compare", str(tmp_path), "--a", "binary", "--b", name, "--bootstrap", "20", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["b"] == label


def test_missing_seed_is_left_out_and_reported(tmp_path, capsys):
    records = write_study(tmp_path)
    records = [r for r in records if not (r["level"] == "seg" and r["seed"] == 1)]
    (tmp_path / "results.json").write_text(json.dumps(records))
    assert main(["compare", str(tmp_path), "--a", "binary", "--b", "seg", "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    assert "mean (1)" in out and "seeds [1]" in out


def test_reordered_images_are_paired_by_id(tmp_path, capsys):
    records = write_study(tmp_path, scores=("mean",))
    assert main(["compare", str(tmp_path), "--a", "binary", "--b", "seg", "--bootstrap", "50", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    for record in records:
        if record["level"] == "seg" and record["location_labels"] is None:
            path = tmp_path / record["predictions"]
            p = read_predictions(path)
            order = np.random.default_rng(0).permutation(N_TEST)
            write_predictions(path, [p.ids[i] for i in order], p.y[order], p.s[order], p.score[order])
    assert main(["compare", str(tmp_path), "--a", "binary", "--b", "seg", "--bootstrap", "50", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == before


def _break_seg_seed0(tmp_path, change):
    records = write_study(tmp_path, scores=("mean",))
    record = next(r for r in records if r["run_key"] == "seg-pixel-s0")
    p = read_predictions(tmp_path / record["predictions"])
    ids, y, s = change(list(p.ids), p.y.copy(), p.s.copy())
    write_predictions(tmp_path / record["predictions"], ids, y, s, p.score[:len(ids)])


@pytest.mark.parametrize("setup, argv, message", [
    (None, ["--a", "binary", "--b", "seg"], "results.json not found"),
    ("study", ["--a", "binary", "--b", "bbox"], "--b 'bbox': no such level in this study; it has: binary, seg, "
                                                "binary (jtt), seg n=20"),
    ("study", ["--a", "binary", "--b", "seg", "--score", "max"], "--score 'max': the study evaluated mean"),
    ("missing_file", ["--a", "binary", "--b", "seg"], "test predictions file not found"),
    ("other_images", ["--a", "binary", "--b", "seg"], "not evaluated on the same test images"),
    ("other_labels", ["--a", "binary", "--b", "seg"], "not evaluated on the same test images (image 'test_00000'"),
    ("no_common_seed", ["--a", "binary", "--b", "seg"], "no seed in common"),
])
def test_errors_are_one_line_exit_2(tmp_path, capsys, setup, argv, message):
    if setup == "study":
        write_study(tmp_path, scores=("mean",))
    elif setup == "missing_file":
        write_study(tmp_path, scores=("mean",))
        (tmp_path / "runs" / "seg-pixel-s1" / predictions_filename("mean")).unlink()
    elif setup == "other_images":
        _break_seg_seed0(tmp_path, lambda ids, y, s: (ids[:-1], y[:-1], s[:-1]))
    elif setup == "other_labels":
        _break_seg_seed0(tmp_path, lambda ids, y, s: (ids, 1 - y, s))
    elif setup == "no_common_seed":
        records = write_study(tmp_path, scores=("mean",))
        records = [r for r in records if not (r["level"] == "seg" or r["seed"] == 1) or
                   (r["level"] == "seg" and r["seed"] == 1)]
        (tmp_path / "results.json").write_text(json.dumps(records))
    assert main(["compare", str(tmp_path), *argv, "--bootstrap", "20"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
