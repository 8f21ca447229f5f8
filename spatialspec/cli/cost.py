"""``spatialspec cost``: the annotation cost of each spatial-specificity level (Saab et al., Sec. 4.1)."""

from __future__ import annotations

import argparse
import json

from spatialspec.cost import DEFAULT_COST_LEVELS, AnnotationCostModel
from spatialspec.levels import parse_levels

from .types import non_negative_int, positive_number

__all__ = ["add_cost_model_arguments", "cost_model_from_args", "register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``cost`` command."""
    parser = sub.add_parser("cost", help="annotation clicks, hours and dollars of each level (Sec. 4.1)",
                            description="Annotation cost per spatial-specificity level, from click counts (Saab et "
                                        "al., Sec. 4.1): binary 1 click per image, a box 2 clicks and a mask n clicks "
                                        "per abnormality. The paper counts positive images only.")
    parser.add_argument("--positives", type=non_negative_int, required=True,
                        help="number of positive images to annotate (m)")
    parser.add_argument("--negatives", type=non_negative_int, default=0,
                        help="negative images, 1 click each at every level (default 0, as in the paper)")
    add_cost_model_arguments(parser)
    parser.add_argument("--patch-cells", type=positive_number, default=None,
                        help="average grid cells one abnormality touches, needed for patch:K levels (K > 1)")
    parser.add_argument("--levels", default=",".join(DEFAULT_COST_LEVELS),
                        help="comma-separated levels (default binary,bbox,seg; also bbox:all, dilate:R, patch:K)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=_cost)


def add_cost_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the Sec. 4.1 click model (:class:`spatialspec.cost.AnnotationCostModel`), shared by ``cost``
    and ``plan``; :func:`cost_model_from_args` reads them back."""
    parser.add_argument("--seg-clicks", type=positive_number, default=45.0,
                        help="clicks to draw one abnormality's mask (n; default 45, Yi 2020)")
    parser.add_argument("--click-seconds", type=positive_number, default=1.0, help="seconds per click (c; default 1)")
    parser.add_argument("--hourly-rate", type=positive_number, default=100.0, help="dollars per hour (default 100)")
    parser.add_argument("--abnormalities-per-image", type=positive_number, default=1.0,
                        help="average abnormalities of a positive image (a; default 1)")


def cost_model_from_args(args: argparse.Namespace, **extra: float | None) -> AnnotationCostModel:
    """The cost model of the options :func:`add_cost_model_arguments` registered (plus ``extra`` fields)."""
    return AnnotationCostModel(seg_clicks=args.seg_clicks, click_seconds=args.click_seconds,
                               hourly_rate=args.hourly_rate, abnormalities_per_image=args.abnormalities_per_image,
                               **extra)


def _cost(args: argparse.Namespace) -> int:
    model = cost_model_from_args(args, patch_cells_per_abnormality=args.patch_cells)
    try:
        levels = parse_levels(args.levels)
    except ValueError as e:
        raise ValueError(f"--levels: {e}") from None
    for level in levels:
        if level.kind == "patch" and level.param != 1 and args.patch_cells is None:
            raise ValueError(f"--levels: level {level.name!r} needs --patch-cells (the average grid cells one "
                             "abnormality touches)")
    costs = model.estimate_levels(levels, positives=args.positives, negatives=args.negatives)
    if args.json:
        print(json.dumps({"positives": args.positives, "negatives": args.negatives,
                          "model": {"seg_clicks": model.seg_clicks, "click_seconds": model.click_seconds,
                                    "hourly_rate": model.hourly_rate,
                                    "abnormalities_per_image": model.abnormalities_per_image,
                                    "patch_cells_per_abnormality": model.patch_cells_per_abnormality},
                          "levels": [c.to_dict() for c in costs]}, indent=1))
        return 0
    print(f"{args.positives} positive and {args.negatives} negative images; {model.click_seconds:g} s a click, "
          f"${model.hourly_rate:,.2f} an hour, {model.abnormalities_per_image:g} abnormalities a positive image, "
          f"{model.seg_clicks:g} clicks a mask")
    header = f"{'level':<12}{'clicks':>14}{'hours':>12}{'cost $':>14}{'extra $':>14}"
    print(header)
    print("-" * len(header))
    for c in costs:
        clicks = f"{c.clicks:,.0f}" if float(c.clicks).is_integer() else f"{c.clicks:,.2f}"
        print(f"{c.level:<12}{clicks:>14}{c.hours:>12,.2f}{c.cost:>14,.2f}{c.extra_cost:>14,.2f}")
    return 0
