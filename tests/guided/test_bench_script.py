"""``scripts/bench_location_methods.py`` (issue 15) on a tiny setting: every model trains the same batch, and one line
per model gives its step time and its ratio to the classifier's."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from helpers import load_script  # noqa: E402


def test_bench_prints_a_ratio_per_method(capsys):
    bench = load_script("bench_location_methods")
    argv = ["--methods", "gain,rrr", "--steps", "1", "--rounds", "1", "--batch-size", "4", "--image-size", "16",
            "--level", "bbox", "--device", "cpu"]
    assert bench.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("training step, cpu, batch 4, 16 x 16, level bbox")
    matches = (re.match(r"(\w+)\s+([\d.]+)\s+([\d.]+)", line) for line in lines[2:])
    rows = {m.group(1): float(m.group(3)) for m in matches if m}
    assert set(rows) == {"classifier", "gain", "rrr"} and rows["classifier"] == 1.0 and rows["rrr"] > 0


def test_bench_rejects_unknown_methods(capsys):
    bench = load_script("bench_location_methods")
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--methods", "gain,nope"])
    assert exit_.value.code == 2 and "--methods" in capsys.readouterr().err
