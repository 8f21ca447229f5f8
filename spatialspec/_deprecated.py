"""Old import paths kept for one release: a module ``__getattr__`` (PEP 562) that serves a name from its new home and
warns with a :class:`DeprecationWarning` naming that home.

Bundle configs and users' scripts write dotted paths such as ``spatialspec.handlers.JTTErrorSetWriter``; when a name
moves (see "where things go" in :mod:`spatialspec`), its old path resolves through :func:`moved_names` until the next
release. Nothing here imports torch: the new home is imported only when the old name is read.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["moved_names"]


def moved_names(module: str, moved: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for the names of ``module`` that moved.

    Args:
        module: the old module's ``__name__``, named in the warning and in the ``AttributeError`` of other names.
        moved: old name -> the full dotted path of its new home (``"spatialspec.robust.jtt.JTTErrorSetWriter"``).

    Returns:
        ``__getattr__(name)``: the object at the new path, after a ``DeprecationWarning`` (``stacklevel=2``, the line
        that read the old name); ``AttributeError`` for a name that is not in ``moved``.

    Example:
        >>> __getattr__ = moved_names(__name__, {"OldName": "spatialspec.errors.InputError"})
    """
    table = dict(moved)

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new_module, _, attribute = table[name].rpartition(".")
        warnings.warn(f"{module}.{name} is deprecated and will be removed in the next release: use {table[name]}",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(new_module), attribute)

    __getattr__.__doc__ = f"Names moved out of {module} (deprecated aliases): {', '.join(sorted(table))}."
    return __getattr__
