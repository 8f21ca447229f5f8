"""`spatialspec cost`: the paper's worked example (Sec. 4.1), the table, and argument errors."""

from __future__ import annotations

import json

import pytest

from spatialspec.cli.main import main


def test_cost_json_reproduces_the_paper(capsys):
    assert main(["cost", "--positives", "10000", "--seg-clicks", "45", "--click-seconds", "1", "--hourly-rate", "100",
                 "--abnormalities-per-image", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    levels = {entry["level"]: entry for entry in out["levels"]}
    assert list(levels) == ["binary", "bbox", "seg"]
    # hand arithmetic: binary 10,000 s, boxes 20,000 s, masks 450,000 s at $100/h
    assert levels["binary"]["hours"] == pytest.approx(10_000 / 3600)
    assert levels["seg"]["cost"] == pytest.approx(450_000 / 3600 * 100)
    assert levels["bbox"]["extra_cost"] == pytest.approx(10_000 / 36)
    assert round(levels["bbox"]["extra_cost"], -1) == 280
    assert round(levels["seg"]["extra_cost"], -2) == 12_200
    assert out["positives"] == 10_000 and out["model"]["seg_clicks"] == 45


def test_cost_defaults_and_table(capsys):
    assert main(["cost", "--positives", "10000"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:]}
    assert set(rows) == {"binary", "bbox", "seg"}
    assert rows["bbox"][-1] == "277.78"  # 10,000 / 36
    assert rows["seg"][-1] == "12,222.22"  # 440,000 / 36
    assert rows["seg"][1] == "450,000"


def test_cost_levels_and_options(capsys):
    assert main(["cost", "--positives", "100", "--negatives", "50", "--click-seconds", "3", "--hourly-rate", "36",
                 "--abnormalities-per-image", "2", "--levels", "binary,bbox:all,dilate:2,patch:4", "--patch-cells",
                 "3", "--json"]) == 0
    levels = {e["level"]: e for e in json.loads(capsys.readouterr().out)["levels"]}
    # $36/h at 3 s a click = $0.03 a click; negatives take 1 click each
    assert levels["binary"]["cost"] == pytest.approx(150 * 0.03)
    assert levels["bbox:all"]["clicks"] == 100 * 2 + 50
    assert levels["dilate:2"]["clicks"] == 100 * 45 * 2 + 50
    assert levels["patch:4"]["clicks"] == 100 * 6 + 50
    assert levels["patch:4"]["extra_cost"] == pytest.approx(500 * 0.03)


@pytest.mark.parametrize("argv, option", [
    (["--positives", "-5"], "--positives"),
    (["--positives", "1.5"], "--positives"),
    (["--positives", "10", "--seg-clicks", "0"], "--seg-clicks"),
    (["--positives", "10", "--click-seconds", "-1"], "--click-seconds"),
    (["--positives", "10", "--hourly-rate", "nan"], "--hourly-rate"),
    (["--positives", "10", "--abnormalities-per-image", "0"], "--abnormalities-per-image"),
    (["--positives", "10", "--negatives", "-1"], "--negatives"),
])
def test_bad_values_name_the_option(argv, option, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["cost", *argv])
    assert exc.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--levels", "binary,box"], "--levels: unknown level 'box'"),
    (["--levels", "patch:4"], "--patch-cells"),
])
def test_bad_levels(argv, message, capsys):
    assert main(["cost", "--positives", "10", *argv]) == 2
    assert message in capsys.readouterr().err
