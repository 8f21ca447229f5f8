"""Benchmark of ``spatialspec sweep run``: 6 tiny runs with --jobs 1, then with --jobs 2 (fresh folders, so nothing is
skipped); prints both wall times and the ratio jobs2 / jobs1 (target < 0.7 on a machine with >= 2 free cores).

    python scripts/bench_sweep.py [--jobs 2] [--epochs 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = ["m=20", "n=16", "a=4", "b=4", "n_val=10", "n_test=20", "mu_y=0.5"]


def _sweep(root: Path, jobs: int, epochs: int) -> float:
    sweep = root / f"sweep{jobs}.json"
    synthetic = [x for kv in TINY for x in ("--synthetic", kv)]
    subprocess.run([sys.executable, "-m", "spatialspec", "sweep", "create", "--out", str(sweep), "--out-dir",
                    str(root / f"jobs{jobs}"), "--levels", "binary,bbox,seg", "--seeds", "0,1", "--epochs",
                    str(epochs), *synthetic], check=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "spatialspec", "sweep", "run", str(sweep), "--jobs", str(jobs)], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = _sweep(Path(tmp), 1, args.epochs)
        many = _sweep(Path(tmp), args.jobs, args.epochs)
    print(f"6 runs: --jobs 1 {one:.1f} s, --jobs {args.jobs} {many:.1f} s, ratio {many / one:.3f}")


if __name__ == "__main__":
    main()
