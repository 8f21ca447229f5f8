"""Spatial-specificity level names, shared by the CLI, the bundle configs and the results (Saab et al., Sec. 3.1).

A level says how much of the abnormality's location the supervision carries:

==============  ====================================================================================
``binary``      every pixel equals the image label y (r = 1 in the paper)
``patch:K``     a K x K grid; a cell is positive if it holds any abnormal pixel
``dilate:R``    the paper's r: a pixel is positive iff an abnormal pixel lies within floor(n/R) - 1
                pixels of it in both axes (``dilate:1`` is ``binary`` on abnormal images, ``dilate:n``
                is ``seg``)
``bbox``        one filled box per connected component of the mask
``bbox:all``    one filled box around all abnormal pixels
``seg``         the mask Y itself (r = n)
==============  ====================================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["SpecificityLevel", "parse_level", "parse_levels", "LEVEL_KINDS"]

LEVEL_KINDS = ("binary", "patch", "dilate", "bbox", "seg")


@dataclass(frozen=True)
class SpecificityLevel:
    """A parsed spatial-specificity level.

    Args:
        kind: one of ``binary``, ``patch``, ``dilate``, ``bbox``, ``seg``.
        param: the grid size K for ``patch``, the resolution R for ``dilate``, ``"all"`` or ``None``
            for ``bbox``; ``None`` otherwise.
    """

    kind: str
    param: int | float | str | None = None

    @property
    def name(self) -> str:
        """The canonical level name, e.g. ``patch:4`` or ``dilate:2.5``."""
        if self.param is None:
            return self.kind
        if isinstance(self.param, float) and self.param.is_integer():
            return f"{self.kind}:{int(self.param)}"
        return f"{self.kind}:{self.param}"

    @property
    def is_location_supervised(self) -> bool:
        """Whether the level needs a location annotation (anything but ``binary``)."""
        return self.kind != "binary"

    def __str__(self) -> str:
        return self.name


def parse_level(name: str | SpecificityLevel) -> SpecificityLevel:
    """Parse a level name (``binary``, ``patch:K``, ``dilate:R``, ``bbox``, ``bbox:all``, ``seg``).

    Raises:
        ValueError: naming the level when its kind is unknown or its parameter is invalid.
    """
    if isinstance(name, SpecificityLevel):
        return name
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"level must be a non-empty string such as 'seg' or 'patch:4', got {name!r}")
    kind, _, arg = name.strip().partition(":")
    kind = kind.lower()
    if kind not in LEVEL_KINDS:
        raise ValueError(f"unknown level {name!r}: the kind must be one of {', '.join(LEVEL_KINDS)}")
    if kind in ("binary", "seg"):
        if arg:
            raise ValueError(f"level {name!r}: '{kind}' takes no parameter")
        return SpecificityLevel(kind)
    if kind == "bbox":
        if arg not in ("", "all", "component"):
            raise ValueError(f"level {name!r}: 'bbox' takes no parameter or 'all'")
        return SpecificityLevel("bbox", "all" if arg == "all" else None)
    if not arg:
        raise ValueError(f"level {name!r}: '{kind}' needs a parameter, e.g. '{kind}:4'")
    if kind == "patch":
        try:
            k = int(arg)
        except ValueError:
            raise ValueError(f"level {name!r}: the patch grid size K must be an integer") from None
        if k < 1:
            raise ValueError(f"level {name!r}: the patch grid size K must be >= 1")
        return SpecificityLevel("patch", k)
    try:
        r = float(arg)
    except ValueError:
        raise ValueError(f"level {name!r}: the resolution R must be a number") from None
    if not (r > 0 and math.isfinite(r)):
        raise ValueError(f"level {name!r}: the resolution R must be a finite number > 0")
    return SpecificityLevel("dilate", int(r) if r.is_integer() else r)


def parse_levels(names: str | list[str]) -> list[SpecificityLevel]:
    """Parse a comma-separated list (``"binary,bbox,seg"``) or a list of level names."""
    items = names.split(",") if isinstance(names, str) else list(names)
    levels = [parse_level(item) for item in items if str(item).strip()]
    if not levels:
        raise ValueError("levels: at least one level is needed")
    return levels
