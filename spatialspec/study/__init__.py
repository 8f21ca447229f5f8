"""The spatial-specificity study (Sec. 3.3.2, 5.1): levels x seeds through the bundles, with reports."""

from __future__ import annotations

from spatialspec._deprecated import moved_names

from .bundles import BINARY_MODELS, bundle_for, find_bundles_dir
from .compare import Comparison, compare_rows
from .inputs import validate_study_inputs
from .report import format_table, plot_results, summarize, write_summary_csv
from .resume import check_run_folders, expected_fingerprint, prepare_study, run_study, train_missing
from .runner import RunSpec, StudyConfig, run_dir, run_training, study_params, study_runs

__all__ = ["BINARY_MODELS", "bundle_for", "find_bundles_dir", "format_table", "plot_results", "summarize",
           "write_summary_csv", "RunSpec", "StudyConfig", "study_runs", "run_dir", "run_study", "run_training",
           "study_params", "train_missing", "validate_study_inputs", "prepare_study", "expected_fingerprint",
           "check_run_folders", "Comparison", "compare_rows"]

__getattr__ = moved_names(__name__, {"plan_runs": "spatialspec.study.runner.study_runs"})
