"""``spatialspec data``: write a data set as files plus a decathlon-style datalist: ``synthetic`` (Sec. 3.2.2),
``siim`` and ``isic`` (the real data sets of Sec. 5), and ``siim-tubes`` (convert the chest-tube label pickle)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spatialspec.data import parse_synthetic_overrides, write_synthetic_datalist
from spatialspec.data.isic import SPURIOUS_RULES, write_isic_datalist
from spatialspec.data.siim import SIIM_SPLIT_MODES, read_tubes_csv, tubes_pickle_to_csv, write_siim_datalist

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``data`` command and its ``synthetic``, ``siim``, ``siim-tubes`` and ``isic`` sub-commands."""
    parser = sub.add_parser("data", help="write data sets as files with a decathlon-style datalist")
    kinds = parser.add_subparsers(dest="kind", required=True)
    synthetic = kinds.add_parser("synthetic", help="the synthetic data model of Sec. 3.2.2")
    synthetic.add_argument("--out", required=True, help="output folder (datalist.json and one folder per split)")
    synthetic.add_argument("--format", choices=("nifti", "png"), default="nifti",
                           help="nifti keeps exact float intensities; png is 8-bit, for viewing and annotation")
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument("--synthetic", action="append", default=[], metavar="KEY=VALUE",
                           help="data-model parameter, repeatable: m, n, mu_y, rho, mu_a, mu_s, sigma, a, b, n_val, "
                                "n_test")
    synthetic.set_defaults(handler=_synthetic)

    siim = kinds.add_parser("siim", help="SIIM-ACR pneumothorax with chest-tube labels (Sec. 5); see docs/datasets.md")
    siim.add_argument("--root", required=True, help="folder with dicom-images-train/ and train-rle.csv")
    siim.add_argument("--tubes", required=True, help="chest-tube labels CSV (ImageId,tube[,split]); make it from "
                      "cxr_tube_dict.pkl with `spatialspec data siim-tubes`")
    siim.add_argument("--out", required=True, help="output folder (images/, masks/, datalist.json)")
    siim.add_argument("--size", type=int, default=512, help="output side in pixels (0 keeps 1024); default 512")
    siim.add_argument("--split", choices=SIIM_SPLIT_MODES, default="official",
                      help="official: every tube-labelled image in validation/test, the rest training; random: "
                           "seeded class-balanced draw of --n-val/--n-test tube-labelled images")
    siim.add_argument("--seed", type=int, default=0, help="seed of the random draws")
    siim.add_argument("--n-val", type=int, default=None, help="validation size of the random split")
    siim.add_argument("--n-test", type=int, default=None, help="test size of the random split")
    siim.add_argument("--rle-csv", default=None, help="run-length CSV (default ROOT/train-rle.csv)")
    siim.add_argument("--skip-bad", action="store_true",
                      help="skip unreadable or missing DICOMs and tube labels of unknown images, with a warning, "
                           "instead of failing")
    siim.add_argument("--workers", type=int, default=1, help="threads reading and writing images")
    siim.set_defaults(handler=_siim)

    tubes = kinds.add_parser("siim-tubes", help="convert the chest-tube label pickle to CSV (nothing executed)")
    tubes.add_argument("--pickle", required=True, help="cxr_tube_dict.pkl (dict SOPInstanceUID -> bool)")
    tubes.add_argument("--test-pickle", default=None,
                       help="the authors' test-image dict, if you have it: adds a split column (val for --pickle, "
                            "test for this one) that the official split follows")
    tubes.add_argument("--out", required=True, help="output CSV (ImageId,tube[,split])")
    tubes.set_defaults(handler=_siim_tubes)

    isic = kinds.add_parser("isic", help="ISIC 2018 with the trap sets of Bissoto et al. (Sec. 5); see "
                            "docs/datasets.md")
    isic.add_argument("--root", required=True, help="folder with ISIC2018_Task1-2_Training_Input/ and "
                      "ISIC2018_Task1_Training_GroundTruth/")
    isic.add_argument("--trap-sets", required=True, help="folder with isic_annotated_{train,val,test}{1..5}.csv")
    isic.add_argument("--seed", type=int, required=True, choices=range(1, 6), metavar="{1..5}",
                      help="the trap set (1 to 5)")
    isic.add_argument("--out", required=True, help="output folder (images/, masks/, lesions/, datalist.json)")
    isic.add_argument("--size", type=int, default=512, help="output side in pixels (0 references the original "
                      "JPEGs); default 512")
    isic.add_argument("--val-from-train", type=float, default=None, metavar="FRACTION",
                      help="carve a class-stratified validation set of this fraction out of the training set instead "
                           "of the published one (whose images are all training images)")
    isic.add_argument("--val-seed", type=int, default=0, help="seed of --val-from-train")
    isic.add_argument("--spurious", choices=SPURIOUS_RULES, default="trap",
                      help="s for the robust AUROC: trap (the paper: s = 1 - y on test, so robust = overall AUROC), "
                           "any artifact, or one artifact")
    isic.add_argument("--workers", type=int, default=1, help="threads reading and writing images")
    isic.set_defaults(handler=_isic)


def _synthetic(args: argparse.Namespace) -> int:
    params = parse_synthetic_overrides(args.synthetic)
    path = write_synthetic_datalist(args.out, params, seed=args.seed, fmt=args.format)
    print(f"wrote {params.m} training, {params.n_val} validation and {params.n_test} test images; datalist: {path}")
    return 0


def _counts(datalist: Path) -> str:
    counts = json.loads(datalist.read_text())["counts"]
    return f"{counts['training']} training, {counts['validation']} validation and {counts['test']} test images"


def _siim(args: argparse.Namespace) -> int:
    path = write_siim_datalist(args.root, args.out, tubes=args.tubes, size=args.size, split=args.split,
                               seed=args.seed, n_val=args.n_val, n_test=args.n_test, skip_bad=args.skip_bad,
                               rle_csv=args.rle_csv, workers=args.workers)
    print(f"wrote {_counts(path)}; datalist: {path}")
    return 0


def _siim_tubes(args: argparse.Namespace) -> int:
    path = tubes_pickle_to_csv(args.pickle, args.out, test_pickle=args.test_pickle)
    labels = read_tubes_csv(path)
    print(f"wrote {len(labels)} chest-tube labels ({sum(t for t, _ in labels.values())} with a tube) to {path}")
    return 0


def _isic(args: argparse.Namespace) -> int:
    path = write_isic_datalist(args.root, args.trap_sets, args.out, seed=args.seed, size=args.size,
                               val_from_train=args.val_from_train, val_seed=args.val_seed, spurious=args.spurious,
                               workers=args.workers)
    print(f"wrote {_counts(path)}; datalist: {path}")
    return 0
