"""``spatialspec audit``: the counterfactual spurious audit of a trained checkpoint (beyond Saab et al. 2022; the
synthetic data model of Sec. 3.2.2 or any datalist with spurious masks). See ``docs/audit.md``."""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spatialspec.atomic import save_figure_atomic, write_json_atomic
from spatialspec.data import SPLITS, load_split, parse_synthetic_overrides, validate_datalist
from spatialspec.data.validate import require_datalist_file
from spatialspec.score_names import parse_score

from .types import non_negative_int, positive_int

if TYPE_CHECKING:
    from spatialspec.audit import AuditResult

__all__ = ["register", "format_audit", "plot_shifts"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``audit`` command."""
    parser = sub.add_parser(
        "audit", help="counterfactual spurious audit of a checkpoint: score shift when S is inserted or removed",
        description="Insert the spurious feature into test images without it (the S region of a random donor) and "
                    "remove it from images with it (filled from the image's own background), and report how the "
                    "model's image score changes, plus the AUROC with every spurious feature removed. Needs spurious "
                    "masks, not subgroup labels.")
    parser.add_argument("--bundle", help="bundle name (e.g. segmentation, binary_classification) or bundle folder; "
                                         "its configs/train.yaml defines the network (required but with --study)")
    parser.add_argument("--checkpoint", help="trained weights (e.g. <study>/runs/<run>/models/model.pt; required but "
                                             "with --study)")
    parser.add_argument("--datalist", help="decathlon-style datalist.json whose entries have spurious_mask")
    parser.add_argument("--synthetic", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="synthetic data-model parameters (the default data), e.g. --synthetic n=32 a=6 b=10")
    parser.add_argument("--split", default="test", choices=SPLITS, help="split to audit (default: %(default)s)")
    parser.add_argument("--score", default="mean", help="image score of a pixel-wise model: mean, max, topk:K "
                                                        "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (use the run's seed) and of "
                                                            "the counterfactuals (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="bundle override of the network, repeatable, e.g. --set 'network_def#channels=[8,16]'")
    parser.add_argument("--placement", choices=("same", "random"), default="same",
                        help="inserted S at the donor's location (moved off the abnormality if it covers it) or at "
                             "a random location (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: %(default)s)")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--bundles-dir", help="folder holding the bundles (default: the source tree's bundles/)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    parser.add_argument("--out", help="folder to write audit.json (summary and per-image scores) and "
                                      "score_shift.png")
    saliency = parser.add_argument_group("where the model looks (--saliency; docs/audit.md)")
    saliency.add_argument("--saliency", action="store_true",
                          help="instead of the counterfactual audit, write saliency overlays of --per-group test "
                               "images per (y, s) subgroup and the share of positive saliency on S, on Y and "
                               "elsewhere on the test split (MONAI's monai.visualize) to --out as saliency.json and "
                               "PNGs")
    saliency.add_argument("--study", help="with --saliency: every run of this `spatialspec study` folder, each on its "
                                          "own test data and seed (default --out: STUDY/saliency)")
    saliency.add_argument("--saliency-method", choices=("gradcam", "input_gradient", "occlusion"),
                          help="gradcam (classifiers), input_gradient or occlusion of the image score (default: "
                               "gradcam for a classifier, occlusion for a pixel-wise network)")
    saliency.add_argument("--per-group", type=non_negative_int, default=2,
                          help="overlay images per (y, s) subgroup (default: %(default)s)")
    saliency.add_argument("--share-images", type=non_negative_int, default=100,
                          help="test images with both S and Y on which the shares are measured, first ones first "
                               "(default: %(default)s)")
    saliency.add_argument("--target-layer", help="Grad-CAM's layer (default: the deepest top-level layer whose "
                                                 "feature map is at least 8 x 8)")
    saliency.add_argument("--occlusion-size", type=positive_int, default=4,
                          help="side of the occluded (non-overlapping) windows in pixels (default: %(default)s)")
    parser.set_defaults(handler=_audit)


def _override(item: str) -> tuple[str, Any]:
    import yaml

    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set {item!r} must look like KEY=VALUE, e.g. network_def#channels=[8,16]")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise ValueError(f"--set {item!r}: cannot read the value: {e}") from None


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def _fmt(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:+.4f}"


def format_audit(result: AuditResult, title: str = "") -> str:
    """The audit as a text table: per direction the count and the score-change statistics, then the AUROCs."""
    header = (f"{'counterfactual':<16}{'n':>6}{'mean':>10}{'median':>10}{'std':>10}{'q05':>10}{'q95':>10}"
              f"{'mean |d|':>10}")
    lines = [title] if title else []
    lines += [header, "-" * len(header)]
    for name, stats in (("insert S", result.insertion), ("remove S", result.removal)):
        lines.append(f"{name:<16}{stats.n:>6}{_fmt(stats.mean):>10}{_fmt(stats.median):>10}{_fmt(stats.std):>10}"
                     f"{_fmt(stats.quantiles['q05']):>10}{_fmt(stats.quantiles['q95']):>10}"
                     f"{_fmt(stats.mean_abs):>10}")
    lines.append(f"mean |score shift| over all {len(result.ids)} images: {result.mean_abs_shift:.4f}")
    auroc = (f"AUROC original {result.auroc_original:.4f}, all spurious features removed {result.auroc_removed:.4f}, "
             f"inserted everywhere {result.auroc_inserted:.4f}")
    lines.append(auroc if math.isfinite(result.auroc_original) else "AUROC: needs both labels y = 0 and y = 1")
    return "\n".join(lines)


def plot_shifts(result: AuditResult, path: str | os.PathLike, title: str = "") -> Path:
    """Histogram of the per-image score changes, insertion and removal overlaid, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    delta = result.delta
    lo, hi = min(float(delta.min()), 0.0), max(float(delta.max()), 0.0)
    bins = np.linspace(lo - 1e-6, hi + 1e-6, 41)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for mask, label, color in ((~result.has_spurious, "S inserted", "tab:red"),
                               (result.has_spurious, "S removed", "tab:blue")):
        ax.hist(delta[mask], bins=bins, alpha=0.6, color=color, label=f"{label} (n={int(mask.sum())})")
    ax.axvline(0.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("image score change (counterfactual - original)")
    ax.set_ylabel("images")
    ax.legend(frameon=False)
    ax.set_title(title or f"mean |score change| = {result.mean_abs_shift:.4f}", fontsize=9)
    fig.tight_layout()
    return save_figure_atomic(fig, path)


def _audit(args: argparse.Namespace) -> int:
    from spatialspec.audit import bundle_score_fn, counterfactual_audit, require_spurious_masks  # torch, MONAI

    if args.saliency:
        return _saliency(args)
    if args.study:
        raise ValueError("--study applies to --saliency only")
    if not args.bundle or not args.checkpoint:
        raise ValueError("the audit needs --bundle and --checkpoint")
    parse_score(args.score)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.datalist and args.synthetic:
        raise ValueError("--synthetic describes the built-in synthetic data; it does not apply to --datalist")
    if not Path(args.checkpoint).expanduser().is_file():
        raise FileNotFoundError(f"--checkpoint: file not found: {args.checkpoint}")
    if args.datalist:
        require_datalist_file(args.datalist)
        # the audit reads images and spurious masks (require_spurious_masks says why it needs them), and reports an
        # AUROC only when both classes are present
        validate_datalist(args.datalist, [args.split], require_label=False, require_both_classes=False)
        entries = load_split(args.split, args.datalist, require_mask=False)
        source = f"datalist {args.datalist} (split '{args.split}')"
    else:
        params = parse_synthetic_overrides(args.synthetic)
        entries = load_split(args.split, None, params, args.seed, require_mask=False)
        source = f"synthetic data ({args.split}, seed {args.seed})"
    require_spurious_masks(entries, source)
    overrides = dict(_override(item) for item in args.overrides)
    score_fn = bundle_score_fn(args.bundle, args.checkpoint, args.score, overrides, args.batch_size, args.device,
                               args.bundles_dir)
    result = counterfactual_audit(score_fn, entries, seed=args.seed, batch_size=args.batch_size,
                                  placement=args.placement)
    meta = {"bundle": str(args.bundle), "checkpoint": str(Path(args.checkpoint).expanduser().resolve()),
            "data": source, "score": args.score, "seed": args.seed, "placement": args.placement,
            "overrides": overrides}
    summary = _nan_to_none({**meta, **result.summary()})
    if args.out:
        out = Path(args.out).expanduser()
        write_json_atomic(out / "audit.json", _nan_to_none({**meta, **result.to_dict(per_image=True)}))
        plot_shifts(result, out / "score_shift.png", f"{args.checkpoint} ({args.bundle}, {args.score}): "
                    f"mean |score change| = {result.mean_abs_shift:.4f}")
    if args.json:
        print(json.dumps(summary, indent=1, allow_nan=False))
    else:
        print(format_audit(result, f"counterfactual spurious audit of {args.checkpoint} ({args.bundle}, score "
                                   f"{args.score}) on {source}"))
        if args.out:
            print(f"wrote {Path(args.out) / 'audit.json'} and {Path(args.out) / 'score_shift.png'}")
    return 0


def _saliency(args: argparse.Namespace) -> int:
    """``--saliency``: one checkpoint (``--bundle``, ``--checkpoint``, data as the counterfactual audit) or every run
    of ``--study``; the work is :func:`spatialspec.audit.saliency_study.run_saliency`."""
    if args.study:
        if args.bundle or args.checkpoint or args.datalist or args.synthetic or args.overrides:
            raise ValueError("--study takes each run's bundle, checkpoint, data and network from the study folder: "
                             "drop --bundle, --checkpoint, --datalist, --synthetic and --set")
        from spatialspec.audit.saliency_study import saliency_study_runs  # torch, MONAI

        runs = saliency_study_runs(args.study)
        out = Path(args.out) if args.out else Path(args.study) / "saliency"
    else:
        if not args.bundle or not args.checkpoint or not args.out:
            raise ValueError("--saliency needs --study STUDY_DIR, or --bundle, --checkpoint and --out")
        parse_score(args.score)
        if not Path(args.checkpoint).expanduser().is_file():
            raise FileNotFoundError(f"--checkpoint: file not found: {args.checkpoint}")
        if args.datalist:
            require_datalist_file(args.datalist)
            validate_datalist(args.datalist, ["test"], require_label=False, require_both_classes=False)
        from spatialspec.audit.saliency_study import SaliencyRun, run_name  # torch, MONAI

        synthetic = parse_synthetic_overrides(args.synthetic).to_dict()
        runs = [SaliencyRun(None, str(args.bundle), args.seed, run_name(args.checkpoint), str(args.bundle),
                            Path(args.checkpoint).expanduser(), args.score, synthetic, args.datalist,
                            dict(_override(item) for item in args.overrides), args.bundles_dir)]
        out = Path(args.out)
    from spatialspec.audit.saliency_study import run_saliency

    def progress(row: dict[str, Any]) -> None:
        shares = ", ".join(f"{k[6:]} {row[k]:.3f}" for k in ("share_spurious", "share_abnormality", "share_elsewhere")
                           if row[k] is not None) or "no shares: no image with both S and Y measured"
        print(f"{row['run']}: {shares} ({row['n_images']} images)", flush=True)

    content = run_saliency(runs, out, args.saliency_method, args.per_group, args.share_images, args.target_layer,
                           args.occlusion_size, args.device, args.batch_size, None if args.json else progress)
    if args.json:
        print(json.dumps(content["summary"], indent=1))
    else:
        print(f"wrote {out / 'saliency.json'} and {len(content['figures'])} overlay PNGs")
    return 0
