"""spatialspec: spatial specificity against spurious features (Saab et al., MLHC 2022), as a MONAI extension.

Subpackages, one concept each: :mod:`spatialspec.data` (synthetic data model, datalists), :mod:`spatialspec.transforms`
(specificity supervision, image scores), :mod:`spatialspec.metrics` (robust AUROC), :mod:`spatialspec.handlers`
(ignite handlers), :mod:`spatialspec.losses`, :mod:`spatialspec.robust` (the JTT and GEORGE baselines),
:mod:`spatialspec.embeddings` (embedding extraction), :mod:`spatialspec.theory` (variance and MI measures, App. B),
:mod:`spatialspec.cost` (annotation cost, Sec. 4.1), :mod:`spatialspec.study` (the level x seed study).
"""

from __future__ import annotations

from . import cost, data, embeddings, handlers, levels, losses, metrics, networks, robust, theory, transforms

__version__ = "0.1.0"

__all__ = ["cost", "data", "embeddings", "handlers", "levels", "losses", "metrics", "networks", "robust", "theory",
           "transforms", "__version__"]
