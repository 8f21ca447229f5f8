"""MONAI's table of bundle components (class and function names by module), built once per process instead of once
per workflow: a study builds three bundle workflows per run (the fingerprint check, training and the test evaluation),
and MONAI's :class:`~monai.bundle.ComponentLocator` scans every loaded ``monai.*`` module for each of them, about as
long as a synthetic run's whole validation takes for an epoch (issue 17)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from monai.bundle.config_item import ComponentLocator
from monai.utils import ensure_tuple

__all__ = ["SharedComponentLocator", "share_component_table"]


class SharedComponentLocator(ComponentLocator):
    """MONAI's :class:`~monai.bundle.ComponentLocator` whose table of components is shared by every instance that
    scans the same modules (the table of the last module set scanned is kept): the table is a function of the modules,
    so a workflow built after another one (and after no further ``monai.*`` module was imported) reads the same one.

    Args:
        excludes: as :class:`~monai.bundle.ComponentLocator`'s.
    """

    _shared: ClassVar[tuple[tuple[str, ...], dict[str, list]] | None] = None

    def _find_classes_or_functions(self, modnames: Sequence[str] | str) -> dict[str, list]:
        key = tuple(ensure_tuple(modnames))
        shared = SharedComponentLocator._shared
        if shared is None or shared[0] != key:
            shared = SharedComponentLocator._shared = (key, super()._find_classes_or_functions(modnames))
        return shared[1]


def share_component_table(parser: Any) -> None:
    """Give a bundle's :class:`~monai.bundle.ConfigParser`, before it parses its config, a
    :class:`SharedComponentLocator` with the same ``excludes``."""
    parser.locator = SharedComponentLocator(excludes=parser.locator.excludes)
