"""``spatialspec measures``: the variance and MI measures of spatial specificity (Sec. 3.3, Appendix B, Table 3).

On the synthetic data (the default) ``--r`` gives one record per spatial specificity r with the closed forms of
Appendix B next to the empirical measures of ``--samples`` generated training images. With ``--datalist`` (or
``--levels``) it gives the empirical measures per level name, e.g. ``binary,bbox,seg`` as in the paper's Table 3.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from spatialspec.atomic import atomic_write
from spatialspec.data import SPLITS, parse_synthetic_overrides, validate_datalist
from spatialspec.data.validate import require_datalist_file
from spatialspec.levels import SpecificityLevel, parse_levels
from spatialspec.theory import (
    ROUNDINGS,
    datalist_arrays,
    default_resolutions,
    empirical_measures,
    synthetic_arrays,
    synthetic_condition_8,
    theory_measures,
)

__all__ = ["register", "format_theory_table", "format_level_table"]

DEFAULT_SAMPLES = 2000


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``measures`` command."""
    parser = sub.add_parser(
        "measures", help="variance and MI measures of spatial specificity (Sec. 3.3, Appendix B)",
        description="Closed-form (Appendix B) and empirical variance measure Var[X | Ytilde = 1] and MI measure "
                    "I(S; Y | Ytilde = 1) per spatial specificity r on the synthetic data, or the empirical measures "
                    "per level of a datalist (Table 3). MI is in nats.")
    parser.add_argument("--r", type=float, nargs="+", metavar="R",
                        help="spatial specificities r (synthetic data; default: 1 2 4 20 40, those <= n, and n)")
    parser.add_argument("--levels", help="comma-separated level names, empirical measures only (default with "
                                         "--datalist: binary,bbox,seg)")
    parser.add_argument("--datalist", help="decathlon-style datalist.json: measure its images and masks")
    parser.add_argument("--split", default="training", choices=SPLITS, help="datalist split (default: %(default)s)")
    parser.add_argument("--synthetic", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="data-model parameters, e.g. --synthetic n=32 a=6 b=10 (repeatable)")
    parser.add_argument("--samples", type=int, help=f"synthetic training images to generate (default "
                                                    f"{DEFAULT_SAMPLES}; sets the data model's m)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default: %(default)s)")
    parser.add_argument("--rounding", choices=ROUNDINGS, default="floor",
                        help="h = floor(n/r) as the dilate:R labels (Sec. 3.1, default) or ceil(n/r) as Appendix B")
    parser.add_argument("--use-rho", action="store_true",
                        help="closed form: w = rho b^2/(n^2-a^2) instead of the appendix's b^2/(n^2-a^2) (rho = 1)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--out", help="also write the JSON list to this file")
    parser.set_defaults(handler=_measures)


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _clean(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """NaN and infinities as JSON null."""
    return [{k: _finite_or_none(v) for k, v in record.items()} for record in records]


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def format_theory_table(records: list[dict[str, Any]]) -> str:
    """The per-r records of :func:`spatialspec.theory.theory_measures` as a text table."""
    header = ["r", "gamma", "var_closed", "var_empirical", "mi_closed", "mi_empirical"]
    rows = [[_fmt(rec["r"])] + [_fmt(rec[key]) for key in header[1:]] for rec in records]
    return _table(header, rows)


def format_level_table(records: list[dict[str, Any]]) -> str:
    """The per-level records of :func:`spatialspec.theory.empirical_measures` as a text table."""
    header = ["level", "var_empirical", "mi_empirical", "pixels"]
    return _table(header, [[_fmt(rec[key]) for key in header] for rec in records])


def _measures(args: argparse.Namespace) -> int:
    if args.r and args.levels:
        raise ValueError("--r and --levels are alternatives: give one (--r R ... is --levels dilate:R,...)")
    if args.samples is not None and args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}")
    if args.datalist:
        if args.synthetic or args.samples is not None:
            raise ValueError("--synthetic and --samples describe the synthetic data; they do not apply to --datalist")
        require_datalist_file(args.datalist)
        # the measures read images, abnormal masks and (when every entry names one) spurious masks
        validate_datalist(args.datalist, [args.split], require_both_classes=False)
        levels = (parse_levels(args.levels) if args.levels
                  else [SpecificityLevel("dilate", r) for r in args.r] if args.r else parse_levels("binary,bbox,seg"))
        records = empirical_measures(datalist_arrays(args.datalist, args.split), levels, args.rounding)
        title = f"{args.datalist} ({args.split}), {args.rounding} rounding"
        return _emit(args, records, format_level_table(records), title)
    params = parse_synthetic_overrides(args.synthetic)
    samples = DEFAULT_SAMPLES if args.samples is None else args.samples
    if args.levels:
        arrays = synthetic_arrays(params, samples, args.seed)
        records = empirical_measures(arrays, parse_levels(args.levels), args.rounding)
        return _emit(args, records, format_level_table(records),
                     f"synthetic data, {samples} training images, seed {args.seed}, {args.rounding} rounding")
    rs = args.r or default_resolutions(params.n)
    records = theory_measures(rs, params, samples, args.seed, args.rounding, args.use_rho)
    cond = synthetic_condition_8(params, args.rounding, args.use_rho)
    title = (f"synthetic data (n={params.n}, a={params.a}, b={params.b}, mu_a={params.mu_a}, mu_s={params.mu_s}, "
             f"sigma={params.sigma}, rho={params.rho}), {samples} training images, seed {args.seed}, "
             f"{args.rounding} rounding; MI in nats\n"
             f"condition (8): {_fmt(cond.lhs)} <= gamma(1) = {_fmt(cond.rhs)}: "
             f"{'holds' if cond.holds else 'does not hold'}")
    return _emit(args, records, format_theory_table(records), title)


def _emit(args: argparse.Namespace, records: list[dict[str, Any]], table: str, title: str) -> int:
    cleaned = _clean(records)
    text = json.dumps(cleaned, indent=1, allow_nan=False)
    if args.out:
        atomic_write(args.out, text + "\n")
    print(text if args.json else f"{title}\n{table}")
    return 0
