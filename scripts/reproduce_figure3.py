"""Reproduce Fig. 3 and Table 2 of Saab et al. (MLHC 2022, Sec. 3.3.2) on the synthetic data.

For every spatial specificity r (default 1, 2, 4, 5, 8, 10, 20, 40) and seed (default 0, 1, 2), a pixel-wise network is
trained through the segmentation bundle at level ``binary`` (r = 1), ``dilate:r`` or ``seg`` (r = n) and evaluated
on the test split (``spatialspec.study.run_training``). Then:

- the variance and MI measures at the same r (``spatialspec.theory.theory_measures``: closed form and empirical);
- Table 2: the average cosine similarity of the bottleneck embeddings (``spatialspec.embeddings``, global average
  pooled) of (y=0,s=0)<->(y=0,s=1) and (y=1,s=0)<->(y=1,s=1) on each run's test split, raw (the paper's measure) and
  centred (columns ``*_centred_*``: minus the mean of the four (y, s) subgroup means, ``center="balanced"`` of
  ``subgroup_cosine_similarity``), mean and std (ddof = 0) over seeds, for every r;
- the 2-D UMAP projections of the binary (r = 1) and segmentation (r = n) embeddings of the first seed (Fig. 3b/c).

Outputs under ``--out``: ``results.json`` (one record per run, rewritten after each; a rerun skips the runs it holds),
``figure3.csv``, ``figure3.png``, ``table2.csv``, ``table2_runs.json`` (per-run values), ``umap_binary.png``,
``umap_seg.png``, ``embeddings/<run>.npz`` and ``figure3_config.json``.

    python scripts/reproduce_figure3.py [--out runs/figure3] [--rs 1 2 4 5 8 10 20 40] [--seeds 0 1 2] [--epochs 50]
        [--samples 2000] [--synthetic KEY=VALUE ...] [--tracking-uri none]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spatialspec.atomic import atomic_write, save_figure_atomic, write_json_atomic
from spatialspec.data import SyntheticParams, parse_synthetic_overrides
from spatialspec.embeddings import (
    SAME_CLASS_PAIRS,
    bundle_test_loader,
    extract_embeddings,
    load_bundle_network,
    pair_key,
    plot_embedding_projection,
    subgroup_cosine_similarity,
    umap_projection,
)
from spatialspec.study import RunSpec, StudyConfig, find_bundles_dir, run_dir, study_runs, train_missing
from spatialspec.theory import theory_measures

__all__ = ["level_for_r", "main", "parse_args", "PAIR_KEYS"]

PAIR_KEYS = tuple(pair_key(a, b) for a, b in SAME_CLASS_PAIRS)
DEFAULT_RS = (1, 2, 4, 5, 8, 10, 20, 40)


def level_for_r(r: float, n: int) -> str:
    """The level name of spatial specificity r on n x n images: ``binary`` for r = 1, ``seg`` for r = n (the same
    labels as ``dilate:1`` and ``dilate:n``, Sec. 3.1), ``dilate:r`` otherwise.

    Raises:
        ValueError: unless 0 < r <= n.
    """
    if not (0 < r <= n):
        raise ValueError(f"--rs: every r must satisfy 0 < r <= n = {n}, got {r}")
    if r == 1:
        return "binary"
    if r == n:
        return "seg"
    return f"dilate:{int(r) if float(r).is_integer() else r}"


def _number(value: str) -> int | float:
    number = float(value)
    return int(number) if number.is_integer() else number


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/figure3", help="output folder (default: %(default)s)")
    parser.add_argument("--rs", nargs="+", type=_number, default=list(DEFAULT_RS), metavar="R",
                        help="spatial specificities r, 0 < r <= n (default: %(default)s)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=50, help="training epochs per run (default: %(default)s)")
    parser.add_argument("--samples", type=int, default=2000,
                        help="training images generated for the empirical measures (default: %(default)s)")
    parser.add_argument("--synthetic", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="data-model overrides, e.g. --synthetic n=16 a=4 b=4 (default: the paper's)")
    parser.add_argument("--tracking-uri", default="none",
                        help="MLflow tracking URI for the runs ('none', the default, disables tracking)")
    parser.add_argument("--bundles-dir", help="folder holding the bundles (default: the source tree's bundles/)")
    parser.add_argument("--umap-seed", type=int, default=0, help="UMAP random state (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.samples < 1:
        parser.error(f"--samples must be >= 1, got {args.samples}")
    return args


# ---------------------------------------------------------------------------------------------------- training


def _check_resume(out: Path, identity: dict[str, Any]) -> None:
    """Refuse to mix runs trained with another data model, epochs or bundles in one output folder."""
    path = out / "figure3_config.json"
    if path.is_file():
        previous = json.loads(path.read_text())
        changed = sorted(k for k in identity if previous.get(k) != identity[k])
        if changed:
            raise ValueError(f"{path}: this folder holds runs trained with other {', '.join(changed)} "
                             f"({ {k: previous.get(k) for k in changed} } vs { {k: identity[k] for k in changed} }); "
                             "use another --out")
    write_json_atomic(path, identity)


def train_all(config: StudyConfig, runs: list[RunSpec]) -> list[dict[str, Any]]:
    """Train every run not yet in ``results.json`` with its checkpoint (:func:`spatialspec.study.train_missing`)."""
    def progress(i: int, spec: RunSpec, records: list[dict[str, Any]] | None, seconds: float) -> None:
        if records is None:
            print(f"[{i}/{len(runs)}] {spec.key}: done, skipped", flush=True)
        else:
            print(f"[{i}/{len(runs)}] {spec.key}: robust AUROC {records[0]['robust_auroc']:.3f}, {seconds:.1f} s",
                  flush=True)

    return train_missing(config, runs, require_checkpoint=True, progress=progress)


# ---------------------------------------------------------------------------------------------------- statistics


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=float)
    finite = array[np.isfinite(array)]
    return (float(finite.mean()), float(finite.std())) if finite.size else (math.nan, math.nan)


def _write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write(path, buffer.getvalue())


def figure3_rows(rs: Sequence[float], levels: Sequence[str], results: list[dict[str, Any]], seeds: Sequence[int],
                 measures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per r: robust / overall AUROC mean and std over seeds, and the theory measures (variance also
    normalised to a maximum of 1 over the r of the table)."""
    var_emp_max = max(m["var_empirical"] for m in measures)
    var_closed_max = max(m["var_closed"] for m in measures)
    rows = []
    for r, level, measure in zip(rs, levels, measures):
        members = [rec for rec in results if rec["level"] == level and rec["seed"] in seeds and rec["score"] == "mean"]
        robust = _mean_std([m["robust_auroc"] for m in members])
        overall = _mean_std([m["overall_auroc"] for m in members])
        rows.append({"r": r, "level": level, "n_seeds": len(members), "robust_auroc_mean": robust[0],
                     "robust_auroc_std": robust[1], "overall_auroc_mean": overall[0], "overall_auroc_std": overall[1],
                     "gamma": measure["gamma"], "var_empirical": measure["var_empirical"],
                     "var_empirical_norm": measure["var_empirical"] / var_emp_max,
                     "var_closed": measure["var_closed"], "var_closed_norm": measure["var_closed"] / var_closed_max,
                     "mi_empirical": measure["mi_empirical"], "mi_closed": measure["mi_closed"]})
    return rows


# ---------------------------------------------------------------------------------------------------- embeddings


def embed_runs(config: StudyConfig, runs: list[RunSpec], out: Path) -> dict[str, dict[str, np.ndarray]]:
    """Bottleneck embeddings (global average pooled) of every run's checkpoint on its seed's test split; each is also
    saved as ``out/embeddings/<run>.npz``."""
    bundles_dir = find_bundles_dir(config.bundles_dir)
    loaders: dict[tuple[str, int], Any] = {}
    embeddings = {}
    for spec in runs:
        bundle = bundles_dir / spec.bundle
        overrides = {"seed": spec.seed, "synthetic": config.synthetic.to_dict(), "level": spec.level,
                     "datalist": config.datalist}
        if (spec.bundle, spec.seed) not in loaders:  # the test split depends on the seed, not on the level
            loaders[spec.bundle, spec.seed] = bundle_test_loader(bundle, overrides)
        network = load_bundle_network(bundle, run_dir(config, spec) / "models" / "model.pt", overrides)
        result = extract_embeddings(network, loaders[spec.bundle, spec.seed])
        embeddings[spec.key] = result
        buffer = io.BytesIO()
        np.savez(buffer, embedding=result["embedding"], y=result["y"], s=result["s"])
        atomic_write(out / "embeddings" / f"{spec.key}.npz", buffer.getvalue())
    return embeddings


def table2(rs: Sequence[float], levels: Sequence[str], runs: list[RunSpec],
           embeddings: dict[str, dict[str, np.ndarray]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Table 2 per r (mean and std over seeds, raw and balanced-centred cosine) and the per-run values."""
    per_run = []
    for spec in runs:
        e = embeddings[spec.key]
        record: dict[str, Any] = {"run_key": spec.key, "level": spec.level, "seed": spec.seed, "n_test": len(e["y"])}
        for center, suffix in ((False, ""), ("balanced", "_centred")):
            for key, value in subgroup_cosine_similarity(e["embedding"], e["y"], e["s"], center=center).items():
                record[key + suffix] = value
        per_run.append(record)
    rows = []
    for r, level in zip(rs, levels):
        members = [rec for rec in per_run if rec["level"] == level]
        row: dict[str, Any] = {"r": r, "level": level, "n_seeds": len(members)}
        for suffix in ("", "_centred"):
            for key in PAIR_KEYS:
                row[f"{key}{suffix}_mean"], row[f"{key}{suffix}_std"] = _mean_std([m[key + suffix] for m in members])
        rows.append(row)
    return rows, per_run


# ---------------------------------------------------------------------------------------------------- figure


def plot_figure3(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Robust AUROC (mean +- std over seeds), the variance measure normalised to max 1 (empirical and closed form)
    and the MI measure (right axis, nats) against r on a log axis (Fig. 3a)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = np.array([row["r"] for row in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(7.0, 4.3))
    ax.errorbar(r, [row["robust_auroc_mean"] for row in rows], yerr=[row["robust_auroc_std"] for row in rows],
                color="tab:red", marker="o", capsize=3, label="robust AUROC (test, mean ± std)")
    ax.plot(r, [row["var_empirical_norm"] for row in rows], color="tab:blue", marker="s",
            label="Var(X | Ỹ=1), empirical / max")
    ax.plot(r, [row["var_closed_norm"] for row in rows], color="tab:blue", ls="--", marker="s", mfc="none",
            label="Var(X | Ỹ=1), closed form / max")
    ax.set_xscale("log")
    ax.set_xticks(r, [f"{v:g}" for v in r])
    ax.minorticks_off()
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel("spatial specificity r (log scale)")
    ax.set_ylabel("robust AUROC / normalised variance")
    mi_ax = ax.twinx()
    mi_ax.plot(r, [row["mi_empirical"] for row in rows], color="tab:green", marker="^",
               label="I(S; Y | Ỹ=1), empirical")
    mi_ax.plot(r, [row["mi_closed"] for row in rows], color="tab:green", ls="--", marker="^", mfc="none",
               label="I(S; Y | Ỹ=1), closed form")
    mi_ax.set_ylabel("MI measure (nats)")
    mi_ax.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()
    mi_handles = mi_ax.get_legend_handles_labels()
    ax.legend(handles[0] + mi_handles[0], handles[1] + mi_handles[1], loc="upper center", bbox_to_anchor=(0.5, -0.17),
              ncol=2, fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure_atomic(fig, path)


def _print_tables(fig_rows: list[dict[str, Any]], t2_rows: list[dict[str, Any]]) -> None:
    print(f"\n{'r':>5} {'level':<10} {'robust AUROC':>15} {'var emp':>8} {'var norm':>8} {'MI emp':>8} "
          f"{'MI closed':>9}")
    for row in fig_rows:
        print(f"{row['r']:>5g} {row['level']:<10} {row['robust_auroc_mean']:.3f} ± {row['robust_auroc_std']:.3f}  "
              f"{row['var_empirical']:8.4f} {row['var_empirical_norm']:8.4f} {row['mi_empirical']:8.4f} "
              f"{row['mi_closed']:9.4f}")
    print(f"\nTable 2 (average cosine similarity, mean ± std over seeds)\n{'r':>5} {'level':<10} "
          + " ".join(f"{k:>15} {k + ' centred':>23}" for k in PAIR_KEYS))
    for row in t2_rows:
        cells = []
        for key in PAIR_KEYS:
            cells.append(f"{row[key + '_mean']:.3f} ± {row[key + '_std']:.3f}".rjust(15))
            cells.append(f"{row[key + '_centred_mean']:.3f} ± {row[key + '_centred_std']:.3f}".rjust(23))
        print(f"{row['r']:>5g} {row['level']:<10} " + " ".join(cells))


def main(argv: Sequence[str] | None = None) -> int:
    """Train (resumably), measure, embed, and write every output; returns the exit status."""
    args = parse_args(argv)
    params: SyntheticParams = parse_synthetic_overrides(args.synthetic)
    rs = list(dict.fromkeys(args.rs))
    levels = [level_for_r(r, params.n) for r in rs]
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    config = StudyConfig(levels=levels, seeds=list(dict.fromkeys(args.seeds)), scores=("mean",),
                         binary_models=("pixel",), epochs=args.epochs, synthetic=params, out_dir=str(out),
                         tracking_uri=args.tracking_uri, experiment_name="spatialspec-figure3",
                         bundles_dir=args.bundles_dir)
    _check_resume(out, {"epochs": args.epochs, "synthetic": params.to_dict(), "overrides": config.overrides})
    runs = study_runs(config)
    started = time.perf_counter()
    results = train_all(config, runs)
    print(f"training: {time.perf_counter() - started:.1f} s", flush=True)

    measures = theory_measures(rs, params, samples=args.samples, seed=0)
    fig_rows = figure3_rows(rs, levels, results, config.seeds, measures)
    _write_csv(fig_rows, out / "figure3.csv")
    plot_figure3(fig_rows, out / "figure3.png",
                 f"synthetic data, n={params.n}: robust AUROC and measures against r ({len(config.seeds)} seeds)")

    embeddings = embed_runs(config, runs, out)
    t2_rows, per_run = table2(rs, levels, runs, embeddings)
    _write_csv(t2_rows, out / "table2.csv")
    write_json_atomic(out / "table2_runs.json", per_run)
    first_seed = config.seeds[0]
    for name, level in (("binary", levels[rs.index(1)] if 1 in rs else None),
                        ("seg", levels[rs.index(params.n)] if params.n in rs else None)):
        if level is None:
            print(f"no r = {1 if name == 'binary' else params.n} in --rs: umap_{name}.png not written", file=sys.stderr)
            continue
        spec = next(s for s in runs if s.level == level and s.seed == first_seed)
        e = embeddings[spec.key]
        points = umap_projection(e["embedding"], seed=args.umap_seed)
        plot_embedding_projection(points, e["y"], e["s"], out / f"umap_{name}.png",
                                  f"{name} model (level {level}, seed {first_seed}): test embeddings")
    _print_tables(fig_rows, t2_rows)
    print(f"\noutputs in {out}: figure3.csv, figure3.png, table2.csv, table2_runs.json, umap_binary.png, umap_seg.png "
          f"({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
