"""spatialspec: spatial specificity against spurious features (Saab et al., MLHC 2022), as a MONAI extension.

Subpackages, one concept each: :mod:`spatialspec.data` (synthetic data model, datalists), :mod:`spatialspec.transforms`
(specificity supervision, image scores), :mod:`spatialspec.metrics` (robust AUROC), :mod:`spatialspec.handlers`
(ignite handlers), :mod:`spatialspec.losses`, :mod:`spatialspec.study` (the level x seed study).
"""

from __future__ import annotations

from . import data, handlers, levels, losses, metrics, transforms

__version__ = "0.1.0"

__all__ = ["data", "handlers", "levels", "losses", "metrics", "transforms", "__version__"]
