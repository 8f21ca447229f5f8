"""Benchmark: how long the ``spatialspec`` command line takes to answer (issue 17: a command line that answers at
once). Each command runs as ``python -m spatialspec ...`` in a fresh interpreter, ``--repeats`` times after one
untimed warm-up run (file cache, byte code); the median wall time is reported, with the minimum and maximum.

The commands that need data read hand-written inputs the script lays out in a temporary folder (a label-budget
``results.json`` for ``plan``, a study folder with per-image predictions for ``compare``, an empty MLflow buffer for
``sync``), written with numpy alone so that any version of spatialspec can be timed. ``--src DIR`` times the package
found in DIR instead of the installed one, e.g. an older commit::

    .venv/bin/python scripts/bench_startup.py                       # this checkout
    mkdir -p /tmp/before && git archive HEAD~1 | tar -x -C /tmp/before
    .venv/bin/python scripts/bench_startup.py --src /tmp/before     # the same commands, older code
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: label -> arguments after ``python -m spatialspec``; ``{data}``: the inputs folder, ``{tmp}``: a fresh folder per run
COMMANDS = {
    "spatialspec --help": ["--help"],
    "spatialspec study --help": ["study", "--help"],
    "spatialspec cost --positives 2669 --json": ["cost", "--positives", "2669", "--json"],
    "spatialspec measures --r 1 40": ["measures", "--r", "1", "40"],
    "spatialspec plan --budget 50 --results DIR": ["plan", "--budget", "50", "--results", "{data}/budget"],
    "spatialspec sweep create --out FILE --out-dir DIR": ["sweep", "create", "--out", "{tmp}/sweep.json", "--out-dir",
                                                           "{tmp}/runs"],
    "spatialspec sync --buffer FILE (empty)": ["sync", "--buffer", "{tmp}/mlflow_buffer.jsonl", "--tracking-uri",
                                               "sqlite:///{tmp}/mlruns.db"],
    "spatialspec compare DIR --a binary --b seg": ["compare", "{data}/study", "--a", "binary", "--b", "seg"],
}


def write_inputs(root: Path) -> None:
    """The inputs of ``plan`` and ``compare`` (see the module docstring)."""
    budget = [{"level": level, "model": "pixel", "score": "mean", "seed": seed, "location_labels": n,
               "robust_auroc": robust, "overall_auroc": overall}
              for seed in (0, 1)
              for level, n, robust, overall in (("seg", 10, 0.6, 0.95), ("seg", 100, 0.9, 0.95),
                                                ("binary", None, 0.1, 0.7))]
    (root / "budget").mkdir(parents=True)
    (root / "budget" / "results.json").write_text(json.dumps(budget))
    records = []
    for level, shortcut in (("binary", True), ("seg", False)):
        for seed in (0, 1, 2):
            rng = np.random.default_rng(100 + seed)
            y, s = rng.integers(0, 2, 1000), rng.integers(0, 2, 1000)
            score = rng.normal(size=1000) + 2.0 * (s if shortcut else y)
            key = f"{level}-pixel-s{seed}"
            rel = f"runs/{key}/test_predictions_mean.csv"
            path = root / "study" / rel
            path.parent.mkdir(parents=True)
            with open(path, "w", newline="") as f:
                writer = csv.writer(f, lineterminator="\n")
                writer.writerow(["id", "y", "s", "score"])
                writer.writerows((f"test_{i:05d}", int(a), int(b), repr(float(c)))
                                 for i, (a, b, c) in enumerate(zip(y, s, score)))
            records.append({"level": level, "model": "pixel", "score": "mean", "seed": seed, "location_labels": None,
                            "run_key": key, "predictions": rel})
    (root / "study" / "results.json").write_text(json.dumps(records))


def time_command(argv: list[str], data: Path, repeats: int, src: str | None) -> list[float]:
    """Wall times of ``repeats`` runs of ``python -m spatialspec argv`` (after one untimed run).

    Raises:
        RuntimeError: if a run fails, with its error output.
    """
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    times = []
    for i in range(repeats + 1):
        tmp = Path(tempfile.mkdtemp(prefix="bench_startup_"))
        try:
            (tmp / "mlflow_buffer.jsonl").write_text("")
            args = [a.format(data=data, tmp=tmp) for a in argv]
            start = time.perf_counter()
            result = subprocess.run([sys.executable, "-m", "spatialspec", *args], cwd=src or None, env=env,
                                    capture_output=True, text=True)
            elapsed = time.perf_counter() - start
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if result.returncode != 0:
            raise RuntimeError(f"spatialspec {' '.join(args)} exited {result.returncode}:\n{result.stderr[-2000:]}")
        if i:
            times.append(elapsed)
    return times


def main(argv: list[str] | None = None) -> int:
    """Time the commands and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per command (default: %(default)s)")
    parser.add_argument("--src", help="folder holding the spatialspec package to time (default: the installed one)")
    parser.add_argument("--commands", nargs="+", choices=list(COMMANDS), metavar="COMMAND",
                        help="time only these, quoted as listed (default: all): " + "; ".join(COMMANDS))
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    src = str(Path(args.src).resolve()) if args.src else None
    report = {}
    with tempfile.TemporaryDirectory(prefix="bench_startup_data_") as data:
        write_inputs(Path(data))
        for label in args.commands or list(COMMANDS):
            times = time_command(COMMANDS[label], Path(data), args.repeats, src)
            report[label] = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                             "repeats": len(times)}
            if not args.json:
                print(f"{label:50s} median {report[label]['median_s']:6.2f} s  (min {min(times):.2f}, "
                      f"max {max(times):.2f}, {len(times)} runs)", flush=True)
    if args.json:
        print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
