"""Annotation cost of a spatial-specificity level, counted in clicks (Saab et al., Sec. 4.1).

The paper's model: after a clinician has found the abnormalities of an image, a binary label takes 1 click, a bounding
box 2 clicks per abnormality and a segmentation mask ``n`` clicks per abnormality (``n = 45`` after Yi, 2020). Only the
``m`` positive images are counted: for ``m`` positives with ``a`` abnormalities each and ``c`` seconds a click, binary
labels take ``m c`` seconds, boxes ``2 m c a`` and masks ``n m c a``; the location annotation replaces the binary
click rather than adding to it, so for ``a = 1`` the extra time over binary is ``m c`` for boxes and ``(n - 1) m c``
for masks. With ``m = 10,000``, ``n = 45``, ``c = 1 s`` and $100 an hour this is $277.78 (the paper's "$280") and
$12,222.22 (the paper's "$12,200").

The project's other level names (:mod:`spatialspec.levels`) are priced by the annotation they are computed from:

==============  ====================================================================================================
``binary``      1 click per image
``bbox``        2 clicks per abnormality (one box per connected component)
``bbox:all``    2 clicks per positive image (one box around all its abnormal pixels, whatever ``a``)
``seg``         ``n`` clicks per abnormality
``dilate:R``    computed from the mask, so priced as ``seg``; except ``R <= 1``, whose labels equal ``binary``'s
                (every pixel of a positive image is positive), priced as ``binary``
``patch:K``     1 click per positive grid cell: ``min(K * K, a * cells_per_abnormality)`` clicks per positive image,
                which needs ``patch_cells_per_abnormality`` (no default: it depends on the abnormality's size
                against the grid); ``patch:1`` is ``binary``
==============  ====================================================================================================

A negative image (no abnormality) costs 1 click (its binary label) at every level; the paper counts positives only,
so the aggregate estimate takes ``negatives = 0`` unless told otherwise, which changes no extra cost over binary.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from spatialspec.levels import SpecificityLevel, parse_level

__all__ = ["AnnotationCostModel", "LevelCost", "DEFAULT_COST_LEVELS", "SECONDS_PER_HOUR"]

DEFAULT_COST_LEVELS = ("binary", "bbox", "seg")
SECONDS_PER_HOUR = 3600.0


def _check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class LevelCost:
    """The annotation cost of one level for a set of images (Sec. 4.1).

    Attributes:
        level: the canonical level name.
        clicks: total clicks.
        hours: total annotation time in hours (``clicks * click_seconds / 3600``).
        cost: total cost in dollars (``hours * hourly_rate``).
        extra_hours: ``hours`` minus the binary level's hours for the same images.
        extra_cost: ``cost`` minus the binary level's cost for the same images.
    """

    level: str
    clicks: float
    hours: float
    cost: float
    extra_hours: float
    extra_cost: float

    def to_dict(self) -> dict[str, float | str]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class AnnotationCostModel:
    """The click-count cost model of Sec. 4.1, priced per level (see the module docstring for the level mapping).

    Args:
        seg_clicks: ``n``, the average clicks to draw one abnormality's mask (45, Yi 2020; the paper assumes n > 2).
        click_seconds: ``c``, seconds per click.
        hourly_rate: the annotator's pay in dollars per hour.
        abnormalities_per_image: ``a``, the average number of abnormalities of a positive image.
        patch_cells_per_abnormality: the average number of grid cells one abnormality touches, for ``patch:K``
            levels (K > 1) only; ``None`` makes those levels raise.

    Raises:
        ValueError: naming the field when a value is not a finite number > 0.

    Example:
        >>> model = AnnotationCostModel()  # the paper's n = 45, c = 1 s, $100/h, a = 1
        >>> round(model.estimate("bbox", positives=10_000).extra_cost, -1)
        280.0
        >>> round(model.estimate("seg", positives=10_000).extra_cost, -2)
        12200.0
    """

    seg_clicks: float = 45.0
    click_seconds: float = 1.0
    hourly_rate: float = 100.0
    abnormalities_per_image: float = 1.0
    patch_cells_per_abnormality: float | None = None

    def __post_init__(self) -> None:
        for name in ("seg_clicks", "click_seconds", "hourly_rate", "abnormalities_per_image"):
            object.__setattr__(self, name, _check_positive(name, getattr(self, name)))
        if self.patch_cells_per_abnormality is not None:
            object.__setattr__(self, "patch_cells_per_abnormality",
                               _check_positive("patch_cells_per_abnormality", self.patch_cells_per_abnormality))

    # ---- one image ------------------------------------------------------------------------------------------------

    def image_clicks(self, level: str | SpecificityLevel, abnormalities: int,
                     positive_cells: int | None = None) -> float:
        """Clicks to label one image with ``abnormalities`` abnormalities at ``level``.

        A negative image (``abnormalities == 0``) takes 1 click at every level. For ``patch:K`` (K > 1),
        ``positive_cells`` is the image's number of positive grid cells when known (e.g. counted on its
        ``patch_supervision``); otherwise ``min(K * K, abnormalities * patch_cells_per_abnormality)``.

        Raises:
            ValueError: naming the parameter for a negative ``abnormalities``/``positive_cells``, or a ``patch:K``
                level without ``positive_cells`` nor ``patch_cells_per_abnormality``.
        """
        abnormalities = _check_count("abnormalities", abnormalities)
        if positive_cells is not None:
            positive_cells = _check_count("positive_cells", positive_cells)
        if abnormalities == 0:
            return 1.0
        return self._positive_image_clicks(parse_level(level), float(abnormalities), positive_cells)

    def image_cost(self, level: str | SpecificityLevel, abnormalities: int, positive_cells: int | None = None) -> float:
        """Dollars to label one image at ``level`` (:meth:`image_clicks` times the price of a click)."""
        return self.image_clicks(level, abnormalities, positive_cells) * self.click_seconds / SECONDS_PER_HOUR \
            * self.hourly_rate

    def image_costs(self, abnormalities: int, levels: Iterable[str | SpecificityLevel] = DEFAULT_COST_LEVELS,
                    positive_cells: int | None = None) -> dict[str, float]:
        """Dollars to label one image at each of ``levels``, keyed by canonical level name."""
        return {parse_level(lv).name: self.image_cost(lv, abnormalities, positive_cells) for lv in levels}

    # ---- a data set -----------------------------------------------------------------------------------------------

    def clicks_per_positive_image(self, level: str | SpecificityLevel) -> float:
        """Average clicks for one positive image (``abnormalities_per_image`` abnormalities) at ``level``."""
        return self._positive_image_clicks(parse_level(level), self.abnormalities_per_image, None)

    def estimate(self, level: str | SpecificityLevel, positives: int, negatives: int = 0) -> LevelCost:
        """Clicks, hours, dollars and extra over binary to label ``positives`` positive and ``negatives`` negative
        images at ``level`` (Sec. 4.1 counts positives only).

        Raises:
            ValueError: naming ``positives``/``negatives`` when not an integer >= 0, or the level when unknown.
        """
        positives = _check_count("positives", positives)
        negatives = _check_count("negatives", negatives)
        parsed = parse_level(level)
        clicks = positives * self.clicks_per_positive_image(parsed) + negatives * 1.0
        binary_clicks = float(positives + negatives)
        hours = clicks * self.click_seconds / SECONDS_PER_HOUR
        binary_hours = binary_clicks * self.click_seconds / SECONDS_PER_HOUR
        return LevelCost(level=parsed.name, clicks=clicks, hours=hours, cost=hours * self.hourly_rate,
                         extra_hours=hours - binary_hours, extra_cost=(hours - binary_hours) * self.hourly_rate)

    def estimate_levels(self, levels: Sequence[str | SpecificityLevel] = DEFAULT_COST_LEVELS, positives: int = 0,
                        negatives: int = 0) -> list[LevelCost]:
        """:meth:`estimate` for each of ``levels``, in order."""
        return [self.estimate(level, positives, negatives) for level in levels]

    # ---- internals ------------------------------------------------------------------------------------------------

    def _positive_image_clicks(self, level: SpecificityLevel, abnormalities: float,
                               positive_cells: int | None) -> float:
        kind, param = level.kind, level.param
        if kind == "binary" or (kind == "dilate" and param <= 1) or (kind == "patch" and param == 1):
            return 1.0
        if kind == "bbox":
            return 2.0 if param == "all" else 2.0 * abnormalities
        if kind in ("seg", "dilate"):
            return self.seg_clicks * abnormalities
        if kind == "patch":
            if positive_cells is not None:
                return float(min(positive_cells, param * param))
            if self.patch_cells_per_abnormality is None:
                raise ValueError(f"level {level.name!r}: pricing a patch level needs patch_cells_per_abnormality "
                                 "(the grid cells one abnormality touches) or the image's positive_cells")
            return min(float(param * param), abnormalities * self.patch_cells_per_abnormality)
        raise ValueError(f"level {level.name!r}: no annotation cost is defined for this level")
