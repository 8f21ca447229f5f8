"""Deprecated module: the stage writers of JTT and GEORGE live in their method packages
(:class:`spatialspec.robust.jtt.JTTErrorSetWriter`, :class:`spatialspec.robust.george.GeorgeGroupsWriter`) and
:class:`AttachToTrainer` in :mod:`spatialspec.handlers.attach`. These names resolve here, with a
``DeprecationWarning``, until the next release."""

from __future__ import annotations

from spatialspec._deprecated import moved_names

__all__: list[str] = []

__getattr__ = moved_names(__name__, {"JTTErrorSetWriter": "spatialspec.robust.jtt.JTTErrorSetWriter",
                                     "GeorgeGroupsWriter": "spatialspec.robust.george.GeorgeGroupsWriter",
                                     "AttachToTrainer": "spatialspec.handlers.attach.AttachToTrainer"})
