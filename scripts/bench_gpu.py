"""Benchmark: one training epoch of the paper-scale segmentation configuration (Saab et al. 2022, App. A.1) on a GPU.

The network (FlexibleUNet with the SE-ResNeXt50 encoder), loss, optimizer (Adam 5e-4) and augmentations (affine,
elastic, brightness and contrast jitter) are read from the ``seg`` level's paper-scale configs
(``spatialspec.registry.config_files("seg", paper_scale=True)``: the common and pixel-wise ``train.yaml``, then
``segmentation/configs/paper_scale.yaml``) with MONAI's ``ConfigParser``; the loop is MONAI's ``SupervisedTrainer``
with AMP and the network in channels-last layout. The data are ``--images`` synthetic ``--size`` x ``--size`` images
(noise plus bright discs, the discs as the label) generated on the device and kept there as the configs' cache keeps
them (16-bit images, 8-bit labels).

``--augment`` says where the augmentations run:

* ``gpu`` (default on a GPU): per image on the device, in a ``ThreadDataLoader`` (MONAI's fast-training recipe);
* ``cpu``: the configuration's own way, in ``--workers`` DataLoader processes on CPU copies of the images;
* ``none``: no augmentation (the network's own throughput).

Printed (and written as JSON with ``--json``): epoch seconds, images/s (all iterations, and without the first
``--warmup`` ones), peak GPU memory, and the data loader's share: the time the trainer waited for batches, over the
epoch. Goal on one H200: an epoch of 10,000 images of 512 x 512 in <= 20 s.

    python scripts/bench_gpu.py [--images 10000] [--size 512] [--batch-size 16] [--augment gpu|cpu|none]
        [--amp-dtype float16|bfloat16|none] [--workers 8] [--cudnn-benchmark] [--json results.json]
    python scripts/bench_gpu.py --images 8 --size 64      # CPU smoke run (no AMP on a CPU)
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
# augmentations that build sampling grids: given the device, they build them there instead of on the CPU
GRID_TRANSFORMS = ("RandAffined", "Rand2DElasticd")


def synthetic_images(n: int, size: int, device: torch.device, seed: int = 0,
                     chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images ``1 x size x size`` (float16: uniform noise plus one bright disc in every other image) and their
    labels (uint8: the disc), generated on ``device`` in chunks."""
    generator = torch.Generator(device=device).manual_seed(seed)
    images = torch.empty((n, 1, size, size), dtype=torch.float16, device=device)
    labels = torch.empty((n, 1, size, size), dtype=torch.uint8, device=device)
    coords = torch.arange(size, device=device, dtype=torch.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        m = stop - start
        centre = torch.rand((m, 2, 1, 1), generator=generator, device=device) * 0.6 * size + 0.2 * size
        radius = (torch.rand((m, 1, 1), generator=generator, device=device) * 0.1 + 0.05) * size
        disc = ((coords[None, :, None] - centre[:, 0]) ** 2 + (coords[None, None, :] - centre[:, 1]) ** 2) <= radius**2
        disc &= (torch.arange(start, stop, device=device) % 2 == 1)[:, None, None]
        noise = torch.rand((m, size, size), generator=generator, device=device)
        images[start:stop, 0] = (noise + disc).half()
        labels[start:stop, 0] = disc.to(torch.uint8)
    return images, labels


def build(device: torch.device, augment: str, amp: bool, channels_last: bool):
    """Network, loss, optimizer and augmentation list of the paper-scale segmentation configuration."""
    from monai.bundle import ConfigParser

    from spatialspec import registry

    parser = ConfigParser()
    parser.read_config([str(f) for f in registry.config_files("seg", paper_scale=True,
                                                              bundles_dir=REPO_ROOT / "bundles")])
    parser["device"] = f"$torch.device({str(device)!r})"
    parser["amp"] = amp
    parser["channels_last"] = channels_last
    if augment == "gpu":
        for i, item in enumerate(parser["train#augmentation"]):
            if item.get("_target_") in GRID_TRANSFORMS:
                parser[f"train#augmentation#{i}#device"] = f"$torch.device({str(device)!r})"
    augmentation = parser.get_parsed_content("train#augmentation") if augment != "none" else []
    return (parser.get_parsed_content("network"), parser.get_parsed_content("loss"),
            parser.get_parsed_content("optimizer"), augmentation)


def make_loader(images: torch.Tensor, labels: torch.Tensor, augmentation: list, augment: str, batch_size: int,
                workers: int):
    """A shuffling loader of ``{"image", "label"}`` float batches: the cast to float32 (the configs' cache boundary),
    then the augmentations."""
    from monai.data import DataLoader, Dataset, ThreadDataLoader
    from monai.transforms import Compose

    def cast(d):
        return {"image": d["image"].float(), "label": d["label"].float()}

    if augment == "cpu":
        images, labels = images.cpu(), labels.cpu()
    data = [{"image": images[i], "label": labels[i]} for i in range(len(images))]
    dataset = Dataset(data, transform=Compose([cast, *augmentation]))
    if augment == "cpu":
        return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=False,
                          pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0)
    return ThreadDataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0)


def run(args: argparse.Namespace) -> dict:
    """One epoch; returns the figures."""
    from ignite.engine import Events
    from monai.engines import SupervisedTrainer
    from monai.utils import set_determinism

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    augment = args.augment or ("gpu" if cuda else "cpu")
    amp = cuda and args.amp_dtype != "none"
    set_determinism(seed=0)  # as the bundles' `initialize` does: deterministic cuDNN algorithms, no autotuning
    if args.cudnn_benchmark:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    images, labels = synthetic_images(args.images, args.size, device)
    if cuda:
        torch.cuda.synchronize(device)
    generate_s = time.perf_counter() - start
    network, loss, optimizer, augmentation = build(device, augment, amp, channels_last=not args.no_channels_last)
    loader = make_loader(images, labels, augmentation, augment, args.batch_size, args.workers)
    amp_kwargs = {"dtype": getattr(torch, args.amp_dtype)} if amp else None
    trainer = SupervisedTrainer(device=device, max_epochs=1, train_data_loader=loader, network=network,
                                optimizer=optimizer, loss_function=loss, amp=amp, amp_kwargs=amp_kwargs,
                                decollate=False, non_blocking=True)
    timing = {"data_wait": 0.0, "fetch_start": 0.0, "iter_ends": []}

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    @trainer.on(Events.GET_BATCH_STARTED)
    def _fetch_started(engine) -> None:
        timing["fetch_start"] = time.perf_counter()

    @trainer.on(Events.GET_BATCH_COMPLETED)
    def _fetch_completed(engine) -> None:
        timing["data_wait"] += time.perf_counter() - timing["fetch_start"]

    @trainer.on(Events.ITERATION_COMPLETED)
    def _iteration_completed(engine) -> None:
        if engine.state.iteration in (args.warmup, math.ceil(args.images / args.batch_size)):
            sync()  # exact times at the end of the warm-up and of the epoch only: no stall in between
        timing["iter_ends"].append(time.perf_counter())

    start = time.perf_counter()
    trainer.run()
    sync()
    epoch_s = time.perf_counter() - start
    iterations = trainer.state.iteration
    steady = None
    if iterations > args.warmup > 0:
        t0 = timing["iter_ends"][args.warmup - 1]
        steady_images = args.images - args.warmup * args.batch_size
        steady = steady_images / (timing["iter_ends"][-1] - t0)
    result = {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "images": args.images, "size": args.size, "batch_size": args.batch_size, "iterations": iterations,
        "augment": augment, "workers": args.workers if augment == "cpu" else 0,
        "amp": args.amp_dtype if amp else "off", "channels_last": not args.no_channels_last,
        "cudnn_benchmark": args.cudnn_benchmark,
        "parameters": sum(p.numel() for p in network.parameters()),
        "generate_s": generate_s, "epoch_s": epoch_s, "images_per_s": args.images / epoch_s,
        "images_per_s_after_warmup": steady, "warmup_iterations": args.warmup,
        "data_wait_s": timing["data_wait"], "data_share": timing["data_wait"] / epoch_s,
        "peak_gpu_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
        "final_loss": float(trainer.state.output["loss"].detach()) if isinstance(trainer.state.output, dict) else None,
        "goal_epoch_s": 20.0,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--size", type=int, default=512, help="image side (a multiple of 32)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--augment", choices=("gpu", "cpu", "none"), default=None,
                        help="where the augmentations run (default: gpu on a GPU, cpu otherwise)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="DataLoader processes for --augment cpu")
    parser.add_argument("--amp-dtype", choices=("float16", "bfloat16", "none"), default="float16",
                        help="autocast dtype on a GPU (float16 is the configs' MONAI default; none: full precision)")
    parser.add_argument("--no-channels-last", action="store_true", help="keep the default memory layout")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="autotuned, non-deterministic cuDNN algorithms instead of the bundles' deterministic ones "
                             "(monai.utils.set_determinism)")
    parser.add_argument("--warmup", type=int, default=10, help="iterations left out of the steady-state rate")
    parser.add_argument("--device", default=None, help="e.g. cuda:0 or cpu (default: cuda if available)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.images < 1 or args.batch_size < 1 or args.size < 32 or args.size % 32:
        parser.error("--images and --batch-size must be >= 1 and --size a positive multiple of 32")
    if args.workers < 0 or args.warmup < 0:
        parser.error("--workers and --warmup must be >= 0")
    result = run(args)
    steady = result["images_per_s_after_warmup"]
    memory = result["peak_gpu_memory_gib"]
    print(f"device {result['device']}: {result['images']} images of {args.size} x {args.size}, batch "
          f"{args.batch_size}, augment {result['augment']}, AMP {result['amp']}, channels-last "
          f"{result['channels_last']}, cuDNN benchmark {args.cudnn_benchmark}, {result['parameters']:,} parameters")
    print(f"epoch {result['epoch_s']:.2f} s ({result['iterations']} iterations): {result['images_per_s']:.1f} images/s"
          + (f", {steady:.1f} images/s after {args.warmup} warm-up iterations" if steady else ""))
    print(f"data loader: {result['data_wait_s']:.2f} s waited, {100 * result['data_share']:.1f} % of the epoch"
          + (f"; peak GPU memory {memory:.2f} GiB" if memory is not None else ""))
    print("goal: an epoch of 10,000 images of 512 x 512 in <= 20 s"
          + (f" ({'met' if result['epoch_s'] <= 20 else 'missed'})" if (args.images, args.size) == (10000, 512)
             else " (not this setting)"))
    if args.json:
        from spatialspec.atomic import write_json_atomic

        write_json_atomic(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
