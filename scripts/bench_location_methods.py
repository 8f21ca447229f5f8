"""Benchmark: the training-step time of each mask-guided classifier method (issue 15: ``rrr``, ``gradmask``,
``actdiff``, ``gain``) as a ratio to the plain classifier's, in one process, on the same network, batch and image
size (goal: at most 3x; the input-gradient and Grad-CAM penalties back-propagate twice, ActDiff runs a second forward
pass).

Every model is built from its bundle's config chain (:func:`spatialspec.registry.config_files`: the classifier
family's network, the method's overlay with its default settings) and trained by a MONAI ``SupervisedTrainer`` whose
``loss_function`` is the method's objective, as ``spatialspec study`` trains it. All networks start from the same
weights; every round runs ``--steps`` iterations of each model in turn (interleaved, so that a slow phase of the
machine hits all of them), after one untimed warm-up round. The median over rounds of the time per step is
reported, and its ratio to the classifier's::

    .venv/bin/python scripts/bench_location_methods.py --steps 5 --rounds 3 --batch-size 32 [--threads 1]
    .venv/bin/python scripts/bench_location_methods.py --paper-scale --image-size 256 --batch-size 16 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import torch
from monai.bundle import ConfigParser
from monai.engines import SupervisedTrainer
from torch.utils.data import default_collate

from spatialspec import registry

GUIDED = ("rrr", "gradmask", "actdiff", "gain")


def _parser(name: str, args: argparse.Namespace) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(f) for f in registry.config_files(name, paper_scale=args.paper_scale)])
    parser.update({"device": f"$torch.device({args.device!r})", "level": args.level, "amp": False,
                   "synthetic": {"n": args.image_size, "m": args.batch_size, "a": max(2, args.image_size // 10),
                                 "b": max(2, args.image_size // 10), "mu_y": 0.5}})
    return parser


def build(names: Sequence[str], args: argparse.Namespace) -> tuple[dict, dict]:
    """``{name: (network, loss_function, optimizer)}`` for the classifier and ``names``, sharing initial weights,
    and one training batch with its location labels (the bundles' synthetic data and preprocessing)."""
    models: dict = {}
    batch = None
    for name in ("classifier", *names):
        parser = _parser(name, args)
        network = parser.get_parsed_content("network")
        if models:
            network.load_state_dict(next(iter(models.values()))[0].state_dict())
        loss = parser.get_parsed_content("loss" if name == "classifier" else "guided_objective")
        optimizer = torch.optim.Adam(network.parameters(), lr=parser.get_parsed_content("learning_rate"))
        models[name] = (network, loss, optimizer)
        if batch is None and name != "classifier":
            dataset = parser.get_parsed_content("train#dataset")
            batch = default_collate([dataset[i] for i in range(args.batch_size)])
    if batch is None:
        raise ValueError("methods: name at least one of " + ", ".join(GUIDED))
    return models, batch


def time_rounds(models: dict, batch: dict, args: argparse.Namespace) -> dict[str, list[float]]:
    """Seconds per training step of each model in each timed round (the first round is a warm-up)."""
    trainers = {}
    for name, (network, loss, optimizer) in models.items():
        trainer = SupervisedTrainer(device=torch.device(args.device), max_epochs=1, network=network,
                                    train_data_loader=[batch] * args.steps, optimizer=optimizer, loss_function=loss,
                                    decollate=False)
        if hasattr(loss, "attach"):
            loss.attach(trainer)
        trainers[name] = trainer
    per_step: dict[str, list[float]] = {name: [] for name in models}
    for round_ in range(args.rounds + 1):
        for name, trainer in trainers.items():
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            trainer.run()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            if round_ > 0:
                per_step[name].append((time.perf_counter() - start) / args.steps)
    return per_step


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print one line per model."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--methods", default=",".join(GUIDED), help="comma-separated, of " + ", ".join(GUIDED))
    ap.add_argument("--steps", type=int, default=10, help="training steps per model and round")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds (after one warm-up round)")
    ap.add_argument("--batch-size", type=int, default=150, help="the bundles' default: 150")
    ap.add_argument("--image-size", type=int, default=40, help="synthetic image side n (the bundles' default: 40)")
    ap.add_argument("--level", default="seg", help="the location level (seg, bbox, dilate:R, patch:K)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--paper-scale", action="store_true", help="the paper-scale ResNet-50 (App. A.1)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.methods.split(",") if n.strip()]
    unknown = [n for n in names if n not in GUIDED]
    if unknown or not names:
        ap.error(f"--methods: {unknown or names} not among {', '.join(GUIDED)}")
    for option in ("steps", "rounds", "batch_size", "image_size", "threads"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            ap.error(f"--{option.replace('_', '-')} must be >= 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models, batch = build(names, args)
    per_step = time_rounds(models, batch, args)
    base = statistics.median(per_step["classifier"])
    print(f"training step, {args.device}, batch {args.batch_size}, {args.image_size} x {args.image_size}, level "
          f"{args.level}, {'paper-scale' if args.paper_scale else 'bundle'} network, median of {args.rounds} rounds "
          f"x {args.steps} steps (torch threads: {torch.get_num_threads()})")
    print(f"{'method':<12}{'ms/step':>10}{'ratio':>8}   goal <= 3x")
    for name, times in per_step.items():
        ratio = statistics.median(times) / base
        flag = "" if name == "classifier" else ("   ok" if ratio <= 3.0 else "   ABOVE GOAL")
        print(f"{name:<12}{1000 * statistics.median(times):>10.1f}{ratio:>8.2f}{flag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
