"""`spatialspec measures`: JSON and table output on the synthetic data and on a datalist, argument errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from spatialspec.cli.main import main
from spatialspec.data import SyntheticParams, write_synthetic_datalist
from spatialspec.theory import (
    datalist_arrays,
    dilate_mask,
    empirical_measures,
    gamma,
    mi_closed_form,
    spurious_rate,
    synthetic_arrays,
    variance_closed_form,
    variance_measure,
)

SMALL = ["--synthetic", "n=20", "a=4", "b=6", "--samples", "150"]
KEYS = {"r", "gamma", "var_closed", "mi_closed", "var_empirical", "mi_empirical", "condition_8"}


def run_json(argv, capsys):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("rounding", ["floor", "ceil"])
def test_measures_json_synthetic(rounding, capsys):
    records = run_json(["measures", "--r", "1", "3", "20", *SMALL, "--rounding", rounding, "--seed", "2", "--json"],
                       capsys)
    assert [rec["r"] for rec in records] == [1, 3, 20]
    params = SyntheticParams(n=20, a=4, b=6)
    w = spurious_rate(20, 4, 6)
    arrays = synthetic_arrays(params, samples=150, seed=2)
    for rec in records:
        assert set(rec) == KEYS
        g = gamma(rec["r"], 20, 4, rounding)
        assert rec["gamma"] == pytest.approx(g, abs=1e-12)
        assert rec["var_closed"] == pytest.approx(variance_closed_form(g, w, 2.0, -10.0, 1.0), abs=1e-9)
        assert rec["mi_closed"] == pytest.approx(mi_closed_form(g, w), abs=1e-12)
        sup = dilate_mask(arrays.masks, rec["r"], rounding)
        assert rec["var_empirical"] == pytest.approx(variance_measure(arrays.images, sup), rel=1e-9)
        # condition (8) by hand: 1/2 - w(1-w)/2 (mu_s / (mu_a - mu_s w))^2 <= a^2 / n^2
        lhs = 0.5 - w * (1 - w) / 2 * (-10.0 / (2.0 + 10.0 * w)) ** 2
        assert rec["condition_8"] is (lhs <= 16 / 400)
    assert records[-1]["mi_empirical"] == 0.0 and records[-1]["gamma"] == 1.0


def test_measures_condition_8_can_fail(capsys):
    # a faint spurious feature (mu_s = 0.5): the variance peaks above gamma(1), condition (8) fails
    w = spurious_rate(20, 4, 6)
    lhs = 0.5 - w * (1 - w) / 2 * (0.5 / (2.0 - 0.5 * w)) ** 2
    assert lhs > 16 / 400
    records = run_json(["measures", "--r", "1", "20", *SMALL, "--synthetic", "mu_s=0.5", "--json"], capsys)
    assert [rec["condition_8"] for rec in records] == [False, False]


def test_measures_table_and_out_file(tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["measures", "--r", "1", "5", "20", *SMALL, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "condition (8)" in printed and "var_empirical" in printed and "holds" in printed
    lines = printed.strip().splitlines()
    assert [line.split()[0] for line in lines[-3:]] == ["1", "5", "20"]
    saved = json.loads(out.read_text())
    assert [rec["r"] for rec in saved] == [1, 5, 20] and set(saved[0]) == KEYS
    assert lines[-2].split()[3] == f"{saved[1]['var_empirical']:.4f}"


def test_measures_default_resolutions(capsys):
    records = run_json(["measures", *SMALL, "--json"], capsys)
    assert [rec["r"] for rec in records] == [1, 2, 4, 20]  # the paper's 1 2 4 20 40 that fit n = 20


def test_measures_datalist_levels(tmp_path, capsys):
    params = SyntheticParams(m=10, n=16, a=4, b=5, n_val=2, n_test=2)
    path = write_synthetic_datalist(tmp_path / "d", params, seed=1)
    records = run_json(["measures", "--datalist", str(path), "--levels", "binary,bbox,seg", "--json"], capsys)
    expected = empirical_measures(datalist_arrays(path), ["binary", "bbox", "seg"])
    assert [rec["level"] for rec in records] == ["binary", "bbox", "seg"]
    for rec, exp in zip(records, expected):
        assert rec["var_empirical"] == pytest.approx(exp["var_empirical"], rel=1e-12)
        assert rec["mi_empirical"] == pytest.approx(exp["mi_empirical"], abs=1e-15)
        assert rec["pixels"] == exp["pixels"]
    # Table 3's ordering on this data: binary > bbox >= seg
    assert records[0]["var_empirical"] > records[1]["var_empirical"] >= records[2]["var_empirical"]

    # without spurious masks the MI measure is null
    content = json.loads(path.read_text())
    for entry in content["training"]:
        del entry["spurious_mask"]
    no_s = tmp_path / "d" / "no_spurious.json"
    no_s.write_text(json.dumps(content))
    assert main(["measures", "--datalist", str(no_s)]) == 0
    assert "-" in capsys.readouterr().out.splitlines()[-1].split()
    records = run_json(["measures", "--datalist", str(no_s), "--json"], capsys)
    assert [rec["level"] for rec in records] == ["binary", "bbox", "seg"]
    assert all(rec["mi_empirical"] is None for rec in records)
    assert all(math.isfinite(rec["var_empirical"]) for rec in records)


def test_measures_synthetic_levels(capsys):
    records = run_json(["measures", "--levels", "binary,patch:4,dilate:20", *SMALL, "--json"], capsys)
    arrays = synthetic_arrays(SyntheticParams(n=20, a=4, b=6), samples=150, seed=0)
    assert [rec["level"] for rec in records] == ["binary", "patch:4", "dilate:20"]
    assert records[2]["var_empirical"] == pytest.approx(variance_measure(arrays.images, arrays.masks), rel=1e-9)
    assert records[0]["var_empirical"] == pytest.approx(
        np.var(arrays.images[arrays.masks.any(axis=(1, 2))].astype(np.float64)), rel=1e-9)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["measures", "--r", "0"], "resolution r"),
        (["measures", "--r", "41"], "r=41"),
        (["measures", "--r", "2", "--levels", "seg"], "--levels"),
        (["measures", "--levels", "nonsense"], "nonsense"),
        (["measures", "--synthetic", "b=99"], "b=99"),
        (["measures", "--samples", "0"], "--samples"),
        (["measures", "--datalist", "/no/such/list.json"], "/no/such/list.json"),
        (["measures", "--datalist", "/no/such/list.json", "--samples", "5"], "--datalist"),
    ],
)
def test_measures_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_measures_bad_rounding(capsys):
    with pytest.raises(SystemExit) as e:
        main(["measures", "--rounding", "round"])
    assert e.value.code == 2
    assert "rounding" in capsys.readouterr().err
