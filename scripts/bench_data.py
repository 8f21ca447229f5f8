"""Benchmark: data loading through a data set config, first epoch against second epoch (Saab et al. 2022,
App. A.1 trains every model for 150 epochs on the same images, so everything before the random augmentations is
worth caching). Goal: the second epoch >= 10x faster than the first.

The script writes ``--images`` SIIM-like (grey) or ISIC-like (RGB) 8-bit PNG images with masks and a
``datalist.json`` into a temporary folder, builds the preprocessing of a level or method with the data set config
(its train chain + ``common/configs/<dataset>.yaml``, :func:`spatialspec.registry.config_files`, with
``dataset_dir`` set to that folder) and iterates a ``DataLoader`` over it for two epochs, no model attached:

* ``persistent``: MONAI ``PersistentDataset`` (cache on disk under the temporary folder): epoch 1 decodes the PNGs,
  resizes, derives the supervision and writes the cache; epoch 2 reads the cache;
* ``cache``: MONAI ``CacheDataset`` (the configs' choice; in memory): epoch 1 includes filling the cache (done when
  the data set is built), epoch 2 reads memory;
* ``none``: a plain ``Dataset``, every epoch decoding the PNGs (the reference).

Both cached variants stop at the configs' cache boundary (a ``RandLambdad`` casting the 16-bit image and 8-bit label
to float) and run the intensity scaling on every read, as training does.

    .venv/bin/python scripts/bench_data.py [--images 200] [--size 256] [--method seg] [--dataset siim]
        [--level seg] [--batch-size 16] [--workers 0] [--threads 1] [--trials 3]
        [--variants persistent cache none]

Each variant is timed ``--trials`` times from scratch (a new cache each time); the medians are printed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from spatialspec import registry
from spatialspec.atomic import write_json_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("persistent", "cache", "none")


def write_images(out: Path, n: int, size: int, dataset: str, seed: int = 0) -> Path:
    """``n`` PNG images of ``size x size`` (grey for ``siim``, RGB for ``isic``) with an elliptic abnormality mask in
    every other image, and a decathlon ``datalist.json`` holding them all as training images; returns its path."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    entries = []
    for k in (out / "images", out / "masks", out / "lesions"):
        k.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        shape = (size, size, 3) if dataset == "isic" else (size, size)
        # a smooth gradient plus noise: compresses like a medical image, not like pure noise
        base = (rows + cols)[..., None] if dataset == "isic" else rows + cols
        image = np.clip(base * (200.0 / (2 * size)) + rng.normal(0, 20, shape), 0, 255).astype(np.uint8)
        cy, cx = rng.uniform(0.2, 0.8, 2) * size
        ry, rx = rng.uniform(0.05, 0.15, 2) * size
        lesion = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1
        y = i % 2
        Image.fromarray(image).save(out / "images" / f"{i:05d}.png")
        Image.fromarray(lesion.astype(np.uint8) * 255 * (y or dataset == "isic")).save(out / "lesions" / f"{i:05d}.png")
        Image.fromarray(lesion.astype(np.uint8) * 255 * y).save(out / "masks" / f"{i:05d}.png")
        entry = {"id": f"{i:05d}", "image": f"images/{i:05d}.png", "label": f"masks/{i:05d}.png", "y": y, "s": y}
        if dataset == "isic":
            entry["lesion"] = f"lesions/{i:05d}.png"
        entries.append(entry)
    return write_json_atomic(out / "datalist.json", {"training": entries, "validation": entries[:2], "test": []})


def config_chain(method: str, dataset: str) -> list[Path]:
    """The train configs of ``method`` with the data set config merged last."""
    return registry.config_files(method, dataset=dataset, bundles_dir=REPO_ROOT / "bundles")


def bundle_pipeline(method: str, dataset: str, dataset_dir: Path, size: int, level: str | None):
    """The training entries and preprocessing (a MONAI ``Compose``) of ``method`` on ``dataset``, from its configs."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(f) for f in config_chain(method, dataset)])
    parser["dataset_dir"] = str(dataset_dir)
    parser["image_size"] = size
    parser["output_dir"] = str(dataset_dir / "out")
    if level is not None:
        parser["level"] = level
    return parser.get_parsed_content("train#data"), parser.get_parsed_content("train#preprocessing")


def time_epochs(variant: str, data, transform, cache_dir: Path, batch_size: int, workers: int) -> tuple[float, float]:
    """Seconds of epoch 1 (for ``cache``: building the data set, i.e. filling the cache, plus the pass) and epoch 2,
    on a new data set (and an empty ``cache_dir``)."""
    from monai.data import CacheDataset, DataLoader, Dataset, PersistentDataset

    start = time.perf_counter()
    if variant == "persistent":
        ds = PersistentDataset(data, transform=transform, cache_dir=cache_dir)
    elif variant == "cache":
        ds = CacheDataset(data, transform=transform, cache_rate=1.0, num_workers=max(workers, 1), progress=False)
    else:
        ds = Dataset(data, transform=transform)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers)
    times = []
    for _ in range(2):
        n = 0
        for batch in loader:
            n += len(batch["image"])
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        if n != len(data):
            raise RuntimeError(f"{variant}: an epoch gave {n} images, expected {len(data)}")
    return times[0], times[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--method", choices=registry.method_names(), default="seg",
                        help="the level or method whose configs build the preprocessing (spatialspec bundle list)")
    parser.add_argument("--dataset", choices=("siim", "isic"), default="siim")
    parser.add_argument("--level", default=None, help="supervision level (default: the method's)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader processes (0: the main process)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--trials", type=int, default=3, help="timings from scratch per variant (medians printed)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads of the main process (DataLoader workers always use 1, as "
                             "PyTorch sets; several threads on small per-image tensors only add synchronisation)")
    args = parser.parse_args(argv)
    if min(args.images, args.size, args.threads, args.trials) < 1:
        parser.error("--images, --size, --threads and --trials must be >= 1")
    import torch

    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="spatialspec_bench_data_") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        write_images(folder, args.images, args.size, args.dataset)
        chain = " + ".join("/".join(f.parts[-3:]) for f in config_chain(args.method, args.dataset))
        print(f"wrote {args.images} {args.dataset} PNG images of {args.size} x {args.size} in "
              f"{time.perf_counter() - start:.2f} s; {args.method}: {chain}, batch {args.batch_size}, "
              f"{args.workers} DataLoader worker(s)")
        data, transform = bundle_pipeline(args.method, args.dataset, folder, args.size, args.level)
        print(f"{'variant':<11} {'epoch 1 (s)':>12} {'epoch 2 (s)':>12} {'ms/image 2':>11} {'ratio 1/2':>10}")
        ratios = {}
        for variant in args.variants:
            runs = [time_epochs(variant, data, transform, folder / f"cache_{variant}_{trial}", args.batch_size,
                                args.workers) for trial in range(args.trials)]
            first, second = (statistics.median(r[i] for r in runs) for i in (0, 1))
            ratios[variant] = first / second
            print(f"{variant:<11} {first:>12.3f} {second:>12.3f} {1000 * second / len(data):>11.3f} "
                  f"{ratios[variant]:>9.1f}x")
        for variant in ("persistent", "cache"):
            if variant in ratios:
                verdict = "meets" if ratios[variant] >= 10 else "misses"
                print(f"{variant}: second epoch {ratios[variant]:.1f}x faster than the first ({verdict} the 10x goal)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
