"""Benchmark: what MLflow tracking costs a `spatialspec study` (issue 17, goal: with / without <= 1.05).

Times the same study three ways, in this process, interleaved (each repetition runs the three sides one after the
other, in an order rotated by one each repetition, so drifts of the machine's speed hit all sides alike):

- ``none``: ``--tracking-uri none`` (no MLflow);
- ``sqlite``: the default store, a new ``<out>/mlruns.db`` per study (its creation is part of the cost);
- ``server``: a real ``mlflow server`` on 127.0.0.1 (SQLite backend, one worker), started once before the timing;
  each repetition logs to its own experiment.

Each side is the whole command (``spatialspec study ... --no-progress``: runs, evaluation, results, summary, plot and,
with tracking, the study's parent run), called through ``spatialspec.cli.main.main`` after an untimed warm-up of every
side (imports, the server's first requests, the empty-store template of :mod:`spatialspec.tracking.store`). Prints the
median wall time of each side over the repetitions and the ratios median(side) / median(none), with the median of the
per-repetition ratios, the process CPU time (this process: training and the MLflow client, not the server) and the
load average.

With ``--per-level`` each level of the study is a command of its own and the three sides are interleaved level by
level: a burst of load from other processes then hits one short comparison rather than a whole repetition (a
repetition's time is the sum over its levels; every level pays the per-study costs -- a new store, the parent run --
so this overstates them).

    .venv/bin/python scripts/bench_tracking.py [--levels binary,bbox,seg] [--seeds 0,1,2] [--epochs 50] [--repeats 3]
        [--per-level]

The defaults are issue 17's default study (9 runs, ~85 s a side on an idle 2-core machine: ~13 min for 3
repetitions); ``--seeds 0`` (3 runs, one per level) is a representative subset that takes ~5 min.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

SIDES = ("none", "sqlite", "server")
SERVER_START_TIMEOUT = 120


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    """A ``mlflow server`` on a free port of 127.0.0.1 with a SQLite backend under ``root``; returns once it answers
    ``/health``."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mlflow = Path(sys.executable).with_name("mlflow")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    log = open(root / "server.log", "w")  # the server writes it until it stops
    proc = subprocess.Popen([str(mlflow), "server", "--backend-store-uri", f"sqlite:///{root / 'mlruns.db'}",
                             "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"], cwd=root, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    return proc, uri
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(proc)
            raise RuntimeError(f"mlflow server did not start:\n{(root / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)


def stop_server(proc: subprocess.Popen) -> None:
    """Stop the server and its worker (its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_study(args: list[str]) -> tuple[float, float]:
    """Wall and process CPU time of one ``spatialspec study`` command run in this process (its output discarded)."""
    from spatialspec.cli.main import main

    output = io.StringIO()
    begin, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = main(["study", *args, "--no-progress"])
    wall, cpu = time.perf_counter() - begin, time.process_time() - cpu
    if status != 0:
        raise RuntimeError(f"spatialspec study {' '.join(args)} exited with {status}:\n{output.getvalue()[-3000:]}")
    return wall, cpu


def side_args(side: str, out: Path, server_uri: str, experiment: str) -> list[str]:
    """The command-line arguments that select ``side``'s tracking."""
    if side == "none":
        return ["--out", str(out), "--tracking-uri", "none"]
    if side == "sqlite":
        return ["--out", str(out)]  # the default: sqlite:///<out>/mlruns.db, created by the study
    return ["--out", str(out), "--tracking-uri", server_uri, "--experiment-name", experiment]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="binary,bbox,seg")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-level", action="store_true", help="one command per level, sides interleaved per level")
    args = parser.parse_args()
    levels = args.levels.split(",")
    parts = [[level] for level in levels] if args.per_level else [levels]
    warm = ["--levels", levels[0], "--seeds", args.seeds.split(",")[0], "--epochs", "2"]
    import spatialspec

    print(f"spatialspec from {Path(spatialspec.__file__).parent}; load average {os.getloadavg()[0]:.2f} "
          f"(1 min) on {os.cpu_count()} cores", flush=True)
    # a SIGTERM (timeout, kill) unwinds through the finally below, which stops the server
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wall = {side: [0.0] * args.repeats for side in SIDES}  # per repetition: the sum over its parts
    cpu = {side: [0.0] * args.repeats for side in SIDES}
    part_ratios: dict[str, list[float]] = {"sqlite": [], "server": []}
    with tempfile.TemporaryDirectory(prefix="bench_tracking_") as tmp:
        root = Path(tmp)
        (root / "server").mkdir()
        proc, uri = start_server(root / "server")
        try:
            for side in SIDES:  # warm-up, untimed
                run_study([*warm, *side_args(side, root / f"warm-{side}", uri, "warm-up")])
            for rep in range(args.repeats):
                order = SIDES[rep % len(SIDES):] + SIDES[:rep % len(SIDES)]
                for i, part in enumerate(parts):
                    study = ["--levels", ",".join(part), "--seeds", args.seeds, "--epochs", str(args.epochs)]
                    times = {}
                    for side in order:
                        out = root / f"r{rep}-p{i}-{side}"
                        times[side] = run_study([*study, *side_args(side, out, uri, f"bench-r{rep}-p{i}")])
                        wall[side][rep] += times[side][0]
                        cpu[side][rep] += times[side][1]
                    for side in part_ratios:
                        part_ratios[side].append(times[side][0] / times["none"][0])
                    print(f"repetition {rep + 1}/{args.repeats} {','.join(part)}: "
                          + ", ".join(f"{side} {times[side][0]:6.1f} s" for side in SIDES)
                          + f"  (load {os.getloadavg()[0]:.2f})", flush=True)
        finally:
            stop_server(proc)
    runs = len(levels) * len(args.seeds.split(","))
    print(f"\nstudy: {runs} runs (levels {args.levels}, seeds {args.seeds}), {args.epochs} epochs each; "
          f"median of {args.repeats} interleaved repetitions{', one command per level' if args.per_level else ''}; "
          f"load average {os.getloadavg()[0]:.2f} (1 min)")
    base, base_cpu = statistics.median(wall["none"]), statistics.median(cpu["none"])
    print(f"without MLflow:       {base:7.1f} s (cpu {base_cpu:6.1f} s)")
    for side, label in (("sqlite", "with MLflow, SQLite: "), ("server", "with MLflow, server: ")):
        median, median_cpu = statistics.median(wall[side]), statistics.median(cpu[side])
        per_rep = statistics.median(t / n for t, n in zip(wall[side], wall["none"], strict=True))
        line = (f"{label} {median:7.1f} s (cpu {median_cpu:6.1f} s)   ratio {median / base:.3f} (goal <= 1.05; "
                f"median per repetition {per_rep:.3f}")
        if args.per_level:
            line += f", per level {statistics.median(part_ratios[side]):.3f}"
        print(f"{line}; cpu {median_cpu / base_cpu:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
