"""scripts/bench_startup.py (issue 17): its hand-written inputs are what ``plan`` and ``compare`` read, and it times
a command end to end."""

from __future__ import annotations

import json

from spatialspec.cli.main import main
from tests.scripts.helpers import load_script


def test_inputs_are_read_by_plan_and_compare(tmp_path, capsys):
    load_script("bench_startup").write_inputs(tmp_path)
    assert main(["plan", "--budget", "50", "--results", str(tmp_path / "budget"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["best"]["option"] == "seg"
    assert main(["compare", str(tmp_path / "study"), "--a", "binary", "--b", "seg", "--bootstrap", "20",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["per_seed"]) == 3 and report["pooled"]["difference"] > 0.5


def test_times_a_command(capsys):
    bench = load_script("bench_startup")
    assert bench.main(["--repeats", "1", "--commands", "spatialspec cost --positives 2669 --json", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report) == ["spatialspec cost --positives 2669 --json"]
    assert report["spatialspec cost --positives 2669 --json"]["repeats"] == 1
    assert 0 < report["spatialspec cost --positives 2669 --json"]["median_s"] < 60
