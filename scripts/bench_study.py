"""Benchmark: the default `spatialspec study` (MONAI bundles, ignite engines) against the same runs written as a plain
PyTorch loop, and what MLflow tracking adds to it, in the same process (after an untimed warm-up of every side).
Prints the three ratios of issue 17 (goals <= 1.05), each the median over the repetitions of the ratio of their
sums, with the per-repetition ratios, the median per run and the machine's load:

- study / plain: ``spatialspec study`` without tracking (``tracking_uri="none"``) against the plain loop;
- study + MLflow (SQLite) / study: the default store, a new ``<out>/mlruns.db`` per study (created by the study);
- study + MLflow (server) / study: a real ``mlflow server`` on 127.0.0.1 (SQLite backend, one worker, started once,
  :func:`bench_tracking.start_server`).

Both the plain loop and the study do the same work per run: generate the synthetic splits, build the level's
supervision, train the same UNet full-batch with Adam for the same epochs, evaluate the validation split every epoch
(loss, image scores, robust AUROC figures), save the best-validation-loss checkpoint, then evaluate it on the test
split. The study also does what makes it a study: run identity, a resume checkpoint every epoch, the bootstrap
intervals and predictions file of the test split, results.json.

Every repetition runs every level x seed once per side, interleaved run by run with the order of the sides rotated
each run, each study in an output folder of its own (a run already in a folder would be reused, not trained).
``scripts/bench_tracking.py`` times the whole ``spatialspec study`` command with and without MLflow instead.

Both sides run with the same C allocator settings: the study's bundles tune glibc's (``spatialspec.allocator``, process
wide), and so does this script before the first run, so the plain loop gets them too; the minor page faults of each
side's runs are printed beside their times.

    .venv/bin/python scripts/bench_study.py [--levels binary,bbox,seg] [--seeds 0,1,2] [--epochs 50] [--repeats 3]
        [--skip-mlflow] [--skip-server] [--bundles-dir DIR] [--only plain|study]

``--only SIDE`` runs the warm-up of both sides, then the runs of that side alone (``--repeats`` times), and prints
their wall time: for a sampling profiler around the whole process, one process per side (docs/benchmarks.md), e.g.
``perf record -e cpu-clock -F 999 -- .venv/bin/python scripts/bench_study.py --levels seg --seeds 0 --repeats 4
--only study``.

The defaults are issue 17's default study: 9 runs of about 8.5 s per side on an idle 2-core machine, about 16 minutes
for 3 repetitions of the four sides.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from monai.networks.nets import UNet

from spatialspec.allocator import tune_cpu_allocator
from spatialspec.data import SyntheticParams, generate_split
from spatialspec.metrics import subgroup_aurocs
from spatialspec.study import StudyConfig, run_study
from spatialspec.transforms import batch_image_score, specificity_supervision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tracking import start_server, stop_server  # noqa: E402  (the real server of scripts/bench_tracking.py)


def _arrays(samples: list[dict], level: str) -> tuple[torch.Tensor, ...]:
    images = torch.from_numpy(np.stack([s["image"] for s in samples]))
    masks = np.stack([s["label"] for s in samples])
    labels = torch.from_numpy(specificity_supervision(masks, level)).long()[:, 0]
    y = np.array([s["y"] for s in samples])
    s = np.array([s["s"] for s in samples])
    return images, labels, y, s


def plain_run(level: str, seed: int, epochs: int, params: SyntheticParams, ckpt: Path) -> dict:
    """One run as a hand-written PyTorch loop."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    train = _arrays(generate_split(params, "training", seed), level)
    val = _arrays(generate_split(params, "validation", seed), level)
    net = UNet(2, 1, 2, channels=(16, 32, 64), strides=(2, 2), num_res_units=1, norm="batch")
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    best = float("inf")
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(train[0]))
        optimizer.zero_grad()
        loss = loss_fn(net(train[0][order]), train[1][order])
        loss.backward()
        optimizer.step()
        net.eval()
        with torch.no_grad():
            logits = net(val[0])
            val_loss = loss_fn(logits, val[1]).item()
            scores = batch_image_score(torch.softmax(logits, 1), "mean").numpy()
        subgroup_aurocs(scores, val[2], val[3])
        if val_loss < best:
            best = val_loss
            torch.save(net.state_dict(), ckpt)
    test = _arrays(generate_split(params, "test", seed), level)
    net.load_state_dict(torch.load(ckpt, weights_only=True))
    net.eval()
    with torch.no_grad():
        scores = batch_image_score(torch.softmax(net(test[0]), 1), "mean").numpy()
    return subgroup_aurocs(scores, test[2], test[3])


def _load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="binary,bbox,seg")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions (the goals read their median)")
    parser.add_argument("--skip-mlflow", action="store_true", help="time neither MLflow side")
    parser.add_argument("--skip-server", action="store_true", help="time MLflow's SQLite store, not a real server")
    parser.add_argument("--bundles-dir", default=None, help="the study's bundles (default: the source checkout's)")
    parser.add_argument("--only", choices=["plain", "study"], default=None,
                        help="after the warm-up, run this side alone (for a sampling profiler; no ratios)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    logging.disable(logging.WARNING)  # the runs' own notices (not converged, ...) would drown the figures
    warnings.simplefilter("ignore")
    levels = args.levels.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    params = SyntheticParams()
    sides = ["plain", "study"] + ([] if args.skip_mlflow or args.only else
                                  ["sqlite"] + ([] if args.skip_server else ["server"]))
    allocator = tune_cpu_allocator()  # the study's bundles do the same; both sides get it
    print(f"start: {_load()}; C allocator: "
          + (f"mmap threshold {allocator.mmap_threshold}, trim threshold {allocator.trim_threshold}"
             if allocator.applied else allocator.reason), flush=True)
    # a SIGTERM (timeout, kill) unwinds through the finally below, which stops the server
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with tempfile.TemporaryDirectory(prefix="bench_study_") as tmp:
        root = Path(tmp)
        server = None
        if "server" in sides:
            (root / "server").mkdir()
            server, server_uri = start_server(root / "server")
        tracking = {"study": "none", "sqlite": None, "server": server_uri if server else None}

        def study(side: str, level: str, seed: int, epochs: int, out: Path) -> list[dict]:
            return run_study(StudyConfig(levels=[level], seeds=[seed], epochs=epochs, synthetic=params,
                                         out_dir=str(out), tracking_uri=tracking[side],
                                         experiment_name=f"bench-{out.name}", bundles_dir=args.bundles_dir))

        def run(side: str, level: str, seed: int, repeat: int) -> dict:
            """One timed run of ``side``: its test figures."""
            if side == "plain":
                return plain_run(level, seed, args.epochs, params, root / "plain.pt")
            return study(side, level, seed, args.epochs, root / f"r{repeat}-{side}")[0]

        try:
            # warm-up, untimed: first-call costs (imports, thread pools, allocator, the server's first requests) go
            # to no side
            plain_run(levels[0], seeds[0], 2, params, root / "warm.pt")
            for side in sides[1:]:
                study(side, levels[0], seeds[0], 2, root / f"warm-{side}")
            if args.only:
                begin = time.perf_counter()
                for repeat in range(args.repeats):
                    for level in levels:
                        for seed in seeds:
                            run(args.only, level, seed, repeat)
                print(f"{args.only}: {args.repeats * len(levels) * len(seeds)} runs in "
                      f"{time.perf_counter() - begin:.1f} s; {_load()}")
                return 0
            # interleaved run by run, the order of the sides rotated each run, so that drifts of the machine's speed
            # hit every side alike
            times: dict[str, list[list[float]]] = {side: [] for side in sides}
            faults: dict[str, list[int]] = {side: [] for side in sides}
            robust: dict[str, dict[str, list[float]]] = {"plain": {}, "study": {}}
            turn = 0
            for repeat in range(args.repeats):
                for side in sides:
                    times[side].append([])
                for level in levels:
                    for seed in seeds:
                        for side in sides[turn % len(sides):] + sides[:turn % len(sides)]:
                            faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                            begin = time.perf_counter()
                            result = run(side, level, seed, repeat)
                            times[side][-1].append(time.perf_counter() - begin)
                            faults[side].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before)
                            if side in robust:
                                robust[side].setdefault(level, []).append(result["robust_auroc"])
                        turn += 1
                print(f"repetition {repeat + 1}: " + ", ".join(f"{side} {sum(times[side][-1]):.1f} s" for side in sides)
                      + f"; {_load()}", flush=True)
        finally:
            if server is not None:
                stop_server(server)

    print(f"\nruns: {len(levels) * len(seeds)} ({','.join(levels)} x seeds {args.seeds}), {args.epochs} epochs each, "
          f"{torch.get_num_threads()} threads, interleaved run by run, {args.repeats} repetitions; end: {_load()}")
    labels = {"plain": "plain PyTorch loop", "study": "spatialspec study", "sqlite": "study + MLflow (SQLite)",
              "server": "study + MLflow (server)"}
    for side in sides:
        print(f"  {labels[side]:<25} {np.median([sum(t) for t in times[side]]):7.1f} s (median repetition), "
              f"{np.median(faults[side]):9.0f} minor page faults (median run)")
    ratios = [("study", "plain", "study / plain")] + [(side, "study", f"{labels[side]} / study")
                                                      for side in ("sqlite", "server") if side in sides]
    for side, base, label in ratios:
        per_repeat = [sum(t) / sum(b) for t, b in zip(times[side], times[base])]
        per_run = [x / y for t, b in zip(times[side], times[base]) for x, y in zip(t, b)]
        print(f"{label:<34} {np.median(per_repeat):.3f}   (goal <= 1.05; repetitions "
              f"{', '.join(f'{r:.3f}' for r in per_repeat)}; median per run {np.median(per_run):.3f})")
    for level in levels:
        print(f"  robust AUROC {level:<8} plain {np.mean(robust['plain'][level]):.3f}   "
              f"study {np.mean(robust['study'][level]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
