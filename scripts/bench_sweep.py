"""Benchmark of ``spatialspec sweep run``: 6 tiny runs (binary, bbox, seg x seeds 0, 1), each time in fresh folders
so nothing is skipped.

``--engine local`` (default): --jobs 1, then --jobs N; prints both wall times and the ratio jobsN / jobs1 (target
< 0.7 on a machine with >= 2 free cores). ``--engine ray``: the same sweep with ``--engine local --jobs N``, then
with ``--engine ray`` on a Ray head of N CPUs started on 127.0.0.1 for the benchmark (one CPU per run, so N runs at a
time on both; the head's start is not timed); prints both wall times and the ratio ray / local (goal <= 1.15).

    python scripts/bench_sweep.py [--engine local|ray] [--jobs 2] [--epochs 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = ["m=20", "n=16", "a=4", "b=4", "n_val=10", "n_test=20", "mu_y=0.5"]


def _sweep(root: Path, name: str, epochs: int, run_options: list[str]) -> float:
    """Write the sweep into ``root/<name>`` and time ``sweep run`` with ``run_options``."""
    sweep = root / f"{name}.json"
    synthetic = [x for kv in TINY for x in ("--synthetic", kv)]
    subprocess.run([sys.executable, "-m", "spatialspec", "sweep", "create", "--out", str(sweep), "--out-dir",
                    str(root / name), "--levels", "binary,bbox,seg", "--seeds", "0,1", "--epochs",
                    str(epochs), *synthetic], check=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "spatialspec", "sweep", "run", str(sweep), *run_options], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.engine == "local":
            one = _sweep(Path(tmp), "jobs1", args.epochs, ["--jobs", "1"])
            many = _sweep(Path(tmp), f"jobs{args.jobs}", args.epochs, ["--jobs", str(args.jobs)])
            print(f"6 runs: --jobs 1 {one:.1f} s, --jobs {args.jobs} {many:.1f} s, ratio {many / one:.3f}")
            return
        from spatialspec.sweep.ray_local import LocalRayHead

        local = _sweep(Path(tmp), "local", args.epochs, ["--jobs", str(args.jobs)])
        with LocalRayHead(num_cpus=args.jobs) as head:
            ray = _sweep(Path(tmp), "ray", args.epochs, ["--engine", "ray", "--address", head.address,
                                                         "--cpus-per-run", "1"])
    print(f"6 runs: --engine local --jobs {args.jobs} {local:.1f} s, --engine ray ({args.jobs} CPUs, 1 per run) "
          f"{ray:.1f} s, ratio ray / local {ray / local:.3f}")


if __name__ == "__main__":
    main()
