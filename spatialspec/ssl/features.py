"""Deprecated module: the feature-map hook Seg-SSL and Seg-SPL share is :mod:`spatialspec.networks.feature_map`.
These names resolve here, with a ``DeprecationWarning``, until the next release."""

from __future__ import annotations

from spatialspec._deprecated import moved_names

__all__: list[str] = []

__getattr__ = moved_names(__name__, {"FeatureMapHook": "spatialspec.networks.feature_map.FeatureMapHook",
                                     "default_feature_layer": "spatialspec.networks.feature_map.default_feature_layer"})
