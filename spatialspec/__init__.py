"""spatialspec: spatial specificity against spurious features (Saab et al., MLHC 2022), as a MONAI extension.

Subpackages, one concept each: :mod:`spatialspec.data` (synthetic data model, datalists), :mod:`spatialspec.transforms`
(specificity supervision, image scores), :mod:`spatialspec.metrics` (robust AUROC), :mod:`spatialspec.handlers`
(ignite handlers), :mod:`spatialspec.losses`, :mod:`spatialspec.networks`, :mod:`spatialspec.robust` (the JTT and
GEORGE baselines), :mod:`spatialspec.ssl` and :mod:`spatialspec.spl` (Seg-SSL and Seg-SPL, Sec. 4.2),
:mod:`spatialspec.guided` (the classifier guided by location labels: RRR, GradMask, ActDiff, GAIN),
:mod:`spatialspec.embeddings` (embedding extraction), :mod:`spatialspec.theory` (variance and MI measures, App. B),
:mod:`spatialspec.cost` (annotation cost, Sec. 4.1; the budget planner), :mod:`spatialspec.study` (the level x seed
study), :mod:`spatialspec.sweep` (a study as independent runs).

Where things go: the layer packages, named after MONAI's (``transforms``, ``losses``, ``metrics``, ``handlers``,
``networks``, ``data``), hold the reusable pieces, which any level, method or bundle may wire (e.g. ``GroupDROLoss``,
``PixelSimilarityLoss``, ``FeatureMapHook``, ``AttachToTrainer``). Each method package (``robust.jtt``,
``robust.george``, ``ssl``, ``spl``, ``guided``) holds what only that method uses: its stage writers, trainer
objectives, data sets and transforms (e.g. ``JTTErrorSetWriter``, ``GroupDROObjective``, ``PseudoLabelWriter``,
``PixelSimilarityObjective``). A piece a second method starts to use moves to its layer package. A name that moves
keeps its old path for one release, with a ``DeprecationWarning`` (:mod:`spatialspec._deprecated`).

Each subpackage is imported on first access (``spatialspec.data.load_split`` after ``import spatialspec``, as the
bundle configs write it; PEP 562), so ``import spatialspec`` costs no torch or MONAI import and the command line
answers at once where it needs neither. The FlexibleUNet backbone ``se_resnext50_32x4d`` (:mod:`spatialspec.networks`)
is registered as soon as MONAI's networks are imported (:mod:`spatialspec._backbones`).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import TYPE_CHECKING

from ._backbones import register_when_monai_networks_load

if TYPE_CHECKING:
    from . import (
        cost,
        data,
        embeddings,
        errors,
        guided,
        handlers,
        identity,
        levels,
        losses,
        metrics,
        networks,
        robust,
        spl,
        ssl,
        theory,
        transforms,
    )

__version__ = "0.1.0"

__all__ = ["cost", "data", "embeddings", "errors", "guided", "handlers", "identity", "levels", "losses", "metrics",
           "networks", "robust", "spl", "ssl", "theory", "transforms", "__version__"]

_SUBPACKAGES = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> ModuleType:
    """Import the subpackage ``name`` on first access (PEP 562): those of :data:`__all__` and any other submodule
    (``spatialspec.study``, ``spatialspec.atomic``), but never ``__main__``. The import binds it as an attribute, so
    later accesses do not come here."""
    if name in _SUBPACKAGES or (not name.startswith("_")
                                and importlib.util.find_spec(f"{__name__}.{name}") is not None):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names and every subpackage of :data:`__all__`, imported or not."""
    return sorted(set(globals()) | set(__all__))


register_when_monai_networks_load()
