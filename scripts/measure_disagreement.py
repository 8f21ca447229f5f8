"""Does the MONAI Label ``disagreement`` strategy find the images where a shortcut shows?

For each seed this trains, on the synthetic data (Saab et al. 2022, Sec. 3.2.2: the spurious square S travels with
the abnormality Y in training), a Binary-ERM classifier and a location-supervised network (``seg`` by default)
through the study runner, then ranks the test split (where s is independent of y) by disagreement
(:func:`spatialspec.label.rank_by_disagreement`, the strategy's ranking, both its ``rank`` and ``probability``
methods) and counts how
many of the top-k images are shortcut-conflicting, ``y != s``: a binary model that reads S errs exactly there.
The baseline in the same run is the base rate of such images, what random picking finds; the ratio is the
strategy's enrichment.

Outputs under ``--out``: ``results.json`` (the study runner's records, resumable), ``disagreement.json`` (per seed:
base rate, top-k rates, enrichment) and the printed table.

    python scripts/measure_disagreement.py [--out runs/disagreement] [--seeds 0 1 2] [--epochs 20] [--top 10 50 100]
        [--location-level seg] [--synthetic KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spatialspec.atomic import write_json_atomic
from spatialspec.data import load_split, parse_synthetic_overrides
from spatialspec.embeddings import load_bundle_network
from spatialspec.label import rank_by_disagreement
from spatialspec.stats import nan_mean_std
from spatialspec.study import RunSpec, StudyConfig, run_dir, study_runs, train_missing
from spatialspec.study.bundles import find_bundles_dir
from spatialspec.transforms.scores import batch_image_score

#: the strategy's default (percentile ranks) and the raw probability gap
METHODS = ("rank", "logit", "probability")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/disagreement")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--top", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--location-level", default="seg", help="the location-supervised level (seg, bbox, ...)")
    parser.add_argument("--synthetic", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args(argv)


def probabilities(bundle: Path, checkpoint: Path, samples: list[dict[str, Any]], batch: int = 250) -> np.ndarray:
    """Image-level abnormal probabilities of a trained bundle network: softmax, then the ``mean`` readout (the
    bundles' inference postprocessing)."""
    network = load_bundle_network(bundle, checkpoint)
    out = []
    with torch.no_grad():
        for start in range(0, len(samples), batch):
            images = torch.as_tensor(np.stack([s["image"] for s in samples[start:start + batch]]))
            out.append(batch_image_score(torch.softmax(network(images), dim=1), "mean").numpy())
    return np.concatenate(out)


def enrichment(ranking: list[dict[str, Any]], conflicting: dict[str, bool], tops: Sequence[int]) -> dict[str, Any]:
    """Base rate of shortcut-conflicting images and their share among the top-k of ``ranking``."""
    base = float(np.mean(list(conflicting.values())))
    rates = {k: float(np.mean([conflicting[r["id"]] for r in ranking[:k]])) for k in tops}
    return {"n": len(ranking), "base_rate": base, "top_rate": rates,
            "enrichment": {k: rate / base if base else float("nan") for k, rate in rates.items()}}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.disable(logging.INFO)
    synthetic = parse_synthetic_overrides(args.synthetic)
    out = Path(args.out)
    config = StudyConfig(levels=["binary", args.location_level], seeds=args.seeds, epochs=args.epochs,
                         binary_models=["classifier"], synthetic=synthetic, out_dir=str(out), tracking_uri="none")
    bundles = find_bundles_dir(None)

    def progress(i: int, spec: RunSpec, records: list[dict[str, Any]] | None, seconds: float) -> None:
        if records is not None:
            print(f"{spec.key}: trained in {seconds:.0f} s", flush=True)

    runs = study_runs(config)
    train_missing(config, runs, require_checkpoint=True, progress=progress)
    per_seed = {}
    for seed in args.seeds:
        specs = {"binary" if spec.level == "binary" else "location": spec for spec in runs if spec.seed == seed}
        test = load_split("test", None, synthetic, seed)
        ids = [s["id"] for s in test]
        prob = {role: probabilities(bundles / spec.bundle, run_dir(config, spec) / "models" / "model.pt", test)
                for role, spec in specs.items()}
        conflicting = {s["id"]: s["y"] != s["s"] for s in test}
        per_seed[seed] = {method: enrichment(rank_by_disagreement(dict(zip(ids, prob["binary"].tolist())),
                                                                  dict(zip(ids, prob["location"].tolist())), method),
                                             conflicting, args.top)
                          for method in METHODS}
    write_json_atomic(out / "disagreement.json", {"location_level": args.location_level, "epochs": args.epochs,
                                                 "synthetic": synthetic.to_dict(), "seeds": per_seed})
    print(f"\nshortcut-conflicting (y != s) images among the top-k by disagreement, binary vs {args.location_level}; "
          f"{len(args.seeds)} seed(s), test split of {per_seed[args.seeds[0]]['rank']['n']}")
    print("| method | k | top-k rate | random (base rate) | enrichment |\n|---|---|---|---|---|")
    for method in METHODS:
        rows = [r[method] for r in per_seed.values()]
        base_mean, base_std = nan_mean_std([r["base_rate"] for r in rows])
        for k in args.top:
            rate_mean, rate_std = nan_mean_std([r["top_rate"][k] for r in rows])
            gain_mean, gain_std = nan_mean_std([r["enrichment"][k] for r in rows])
            print(f"| {method} | {k} | {rate_mean:.3f} ± {rate_std:.3f} | {base_mean:.3f} ± {base_std:.3f} | "
                  f"{gain_mean:.2f}× ± {gain_std:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
