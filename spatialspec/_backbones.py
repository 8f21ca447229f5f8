"""Register spatialspec's FlexibleUNet backbone (``se_resnext50_32x4d``, :mod:`spatialspec.networks`) whenever MONAI's
networks are imported, without importing torch or MONAI to do so.

A bundle config writes ``$import spatialspec`` and then ``FlexibleUNet(backbone="se_resnext50_32x4d")`` (the paper's
segmentation network, App. A.1). ``import spatialspec`` imports its subpackages on first access only, so that the
command line answers without torch and MONAI; :func:`register_when_monai_networks_load` keeps the backbone available
anyway: it registers it at once when :mod:`monai.networks.nets` is already imported, and otherwise right after that
module is first imported (a one-shot import hook on :data:`sys.meta_path`), in whichever order a program imports
spatialspec and MONAI.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

__all__ = ["MONAI_NETWORKS", "register_when_monai_networks_load"]

#: the MONAI module whose import registers the backbone (FlexibleUNet and its encoder register live under it)
MONAI_NETWORKS = "monai.networks.nets"


def _register() -> None:
    """Import :mod:`spatialspec.networks`, which registers the backbone; a failure warns instead of breaking MONAI's
    import."""
    try:
        import spatialspec.networks  # noqa: F401  (registers se_resnext50_32x4d at import)
    except Exception as e:  # pragma: no cover - an installation problem, reported rather than raised inside MONAI
        warnings.warn(f"spatialspec: the FlexibleUNet backbone se_resnext50_32x4d could not be registered: {e!r}",
                      RuntimeWarning, stacklevel=2)


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for :data:`MONAI_NETWORKS` it asks the other finders for the module's spec and makes
    its loader register the backbone once the module has executed, then leaves :data:`sys.meta_path`."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        """The spec of :data:`MONAI_NETWORKS` as the next finder gives it, with the registration chained to its
        ``exec_module``; ``None`` for every other module."""
        if fullname != MONAI_NETWORKS:
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:  # pragma: no cover - a legacy loader; MONAI is installed from files
            return spec

        def exec_then_register(module: ModuleType) -> None:
            exec_module(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            _register()

        loader.exec_module = exec_then_register  # type: ignore[union-attr]  # this spec's own loader instance
        return spec


def register_when_monai_networks_load() -> None:
    """Register the ``se_resnext50_32x4d`` FlexibleUNet backbone now if :data:`MONAI_NETWORKS` is imported, else
    as soon as it is (idempotent)."""
    if MONAI_NETWORKS in sys.modules:
        _register()
    elif not any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
