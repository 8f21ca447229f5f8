"""Ignite handlers of spatialspec."""

from __future__ import annotations

from .convergence import ConvergenceMonitor, best_epoch, is_converged
from .robust_auroc import RobustAUROC
from .resume import ResumeHandler, load_resume_checkpoint
from .robust_stages import AttachToTrainer, GeorgeGroupsWriter, JTTErrorSetWriter
from .run_params import attach_run_params, flatten_params
from .selection import SELECTION_RULES, STUDY_RULES, ModelSelection, SelectionCheckpointSaver

__all__ = ["RobustAUROC", "JTTErrorSetWriter", "GeorgeGroupsWriter", "AttachToTrainer", "attach_run_params",
           "flatten_params",
           "ResumeHandler", "load_resume_checkpoint", "ConvergenceMonitor", "best_epoch", "is_converged",
           "ModelSelection", "SelectionCheckpointSaver", "SELECTION_RULES", "STUDY_RULES"]
