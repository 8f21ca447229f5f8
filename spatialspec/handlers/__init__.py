"""Ignite handlers of spatialspec: reusable pieces any bundle wires (robust AUROC, model selection, convergence,
resume, run parameters, attaching objects to a trainer, epoch means of loss terms).

A method's own handlers live in its method package (see "where things go" in :mod:`spatialspec`):
``JTTErrorSetWriter`` in :mod:`spatialspec.robust.jtt`, ``GeorgeGroupsWriter`` in :mod:`spatialspec.robust.george`,
``PseudoLabelWriter`` in :mod:`spatialspec.ssl`. Their old names here resolve, with a ``DeprecationWarning``, until
the next release.
"""

from __future__ import annotations

from spatialspec._deprecated import moved_names

from .attach import AttachToTrainer
from .batch_keys import batch_keys
from .convergence import ConvergenceMonitor, best_epoch, is_converged
from .epoch_means import EpochMeans
from .resume import ResumeHandler, load_resume_checkpoint
from .robust_auroc import RobustAUROC
from .run_params import attach_run_params, flatten_params
from .selection import SELECTION_RULES, STUDY_RULES, ModelSelection, SelectionCheckpointSaver

__all__ = ["RobustAUROC", "AttachToTrainer", "batch_keys", "EpochMeans", "attach_run_params", "flatten_params",
           "ResumeHandler", "load_resume_checkpoint", "ConvergenceMonitor", "best_epoch", "is_converged",
           "ModelSelection", "SelectionCheckpointSaver", "SELECTION_RULES", "STUDY_RULES"]

__getattr__ = moved_names(__name__, {"JTTErrorSetWriter": "spatialspec.robust.jtt.JTTErrorSetWriter",
                                     "GeorgeGroupsWriter": "spatialspec.robust.george.GeorgeGroupsWriter"})
