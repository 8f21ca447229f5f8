"""Exported bundles for the MONAI model zoo (issue 14): one level or method of :data:`spatialspec.registry.METHODS`
materialised as a self-contained bundle (``spatialspec bundle export``), with the figures measured for it.

- :mod:`spatialspec.zoo.export`: :func:`export_bundle`, the layout and its commands;
- :mod:`spatialspec.zoo.configs`: merging a config chain, overlays, ``%file`` macros, the part a workflow reaches;
- :mod:`spatialspec.zoo.metadata`: ``metadata.json`` made true of the export, figures of a study record;
- :mod:`spatialspec.zoo.measure`: the test figures of a shipped checkpoint, measured by the bundle itself.

Importing this package imports neither torch nor MONAI; exporting does.
"""

from __future__ import annotations

from .export import LARGE_FILE_BYTES, SHIPPED_CHECKPOINT, bundle_commands, export_bundle

__all__ = ["export_bundle", "bundle_commands", "LARGE_FILE_BYTES", "SHIPPED_CHECKPOINT"]
