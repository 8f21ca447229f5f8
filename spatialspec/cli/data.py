"""``spatialspec data synthetic``: write the synthetic data set (Sec. 3.2.2) as files plus a datalist."""

from __future__ import annotations

import argparse

from spatialspec.data import parse_synthetic_overrides, write_synthetic_datalist

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``data`` command and its ``synthetic`` sub-command."""
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


def _synthetic(args: argparse.Namespace) -> int:
    params = parse_synthetic_overrides(args.synthetic)
    path = write_synthetic_datalist(args.out, params, seed=args.seed, fmt=args.format)
    print(f"wrote {params.m} training, {params.n_val} validation and {params.n_test} test images; datalist: {path}")
    return 0
