"""Benchmark: the default `spatialspec study` (MONAI bundles, ignite engines) against the same runs written as a plain
PyTorch loop, in the same process (after an untimed warm-up of both). Prints the wall times and their ratio (goal:
study / plain <= 1.10).

Both sides do the same work per run: generate the synthetic splits, build the level's supervision, train the same
UNet full-batch with Adam for the same epochs, evaluate the validation split every epoch (loss, image scores, robust
AUROC figures), save the best-validation-loss checkpoint, then evaluate it on the test split. The study is timed
without MLflow (the plain loop has no tracking) and, for information, with MLflow's SQLite store.

    .venv/bin/python scripts/bench_study.py [--levels binary,bbox,seg] [--seeds 0,1,2] [--epochs 50]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.networks.nets import UNet

from spatialspec.data import SyntheticParams, generate_split
from spatialspec.metrics import subgroup_aurocs
from spatialspec.study import StudyConfig, run_study
from spatialspec.transforms import batch_image_score, specificity_supervision


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="binary,bbox,seg")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--skip-mlflow", action="store_true", help="do not time the study with MLflow tracking")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    levels = args.levels.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    params = SyntheticParams()
    torch.set_num_threads(torch.get_num_threads())

    with tempfile.TemporaryDirectory() as tmp:
        # warm-up, untimed: first-call costs (imports, thread pools, allocator) go to neither side
        plain_run(levels[0], seeds[0], 2, params, Path(tmp) / "warm.pt")
        run_study(StudyConfig(levels=levels[:1], seeds=seeds[:1], epochs=2, synthetic=params,
                              out_dir=str(Path(tmp) / "warm"), tracking_uri="none"))
        # interleaved, run by run, so that drifts of the machine's speed hit both sides alike
        times: dict[str, list[float]] = {"plain": [], "study": [], "mlflow": []}
        robust: dict[str, dict[str, list[float]]] = {"plain": {}, "study": {}}
        for level in levels:
            for seed in seeds:
                begin = time.perf_counter()
                result = plain_run(level, seed, args.epochs, params, Path(tmp) / "plain.pt")
                times["plain"].append(time.perf_counter() - begin)
                robust["plain"].setdefault(level, []).append(result["robust_auroc"])
                sides = [("study", "none")] + ([] if args.skip_mlflow else [("mlflow", None)])
                for side, tracking in sides:
                    config = StudyConfig(levels=[level], seeds=[seed], epochs=args.epochs, synthetic=params,
                                         out_dir=str(Path(tmp) / side), tracking_uri=tracking)
                    begin = time.perf_counter()
                    records = run_study(config)
                    times[side].append(time.perf_counter() - begin)
                    if side == "study":
                        robust["study"].setdefault(level, []).append(records[0]["robust_auroc"])

    plain_s = sum(times["plain"])
    print(f"runs: {len(times['plain'])} ({','.join(levels)} x seeds {args.seeds}), {args.epochs} epochs each, "
          f"{torch.get_num_threads()} threads, interleaved")
    print(f"plain PyTorch loop:         {plain_s:7.1f} s")
    for side, label in (("study", "spatialspec study:        "), ("mlflow", "spatialspec study + MLflow:")):
        if times[side]:
            total = sum(times[side])
            median = float(np.median(np.array(times[side]) / np.array(times["plain"])))
            goal = "   (goal <= 1.10)" if side == "study" else ""
            print(f"{label} {total:7.1f} s   ratio {total / plain_s:.3f}, median per run {median:.3f}{goal}")
    for level in levels:
        print(f"  robust AUROC {level:<8} plain {np.mean(robust['plain'][level]):.3f}   "
              f"study {np.mean(robust['study'][level]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
