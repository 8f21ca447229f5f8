"""The spatial-specificity study (Sec. 3.3.2, 5.1): levels x seeds through the bundles, with reports."""

from __future__ import annotations

from .bundles import BINARY_MODELS, bundle_for, find_bundles_dir
from .report import format_table, plot_results, summarize, write_summary_csv
from .runner import RunSpec, StudyConfig, plan_runs, run_dir, run_study, run_training, study_params, train_missing

__all__ = ["BINARY_MODELS", "bundle_for", "find_bundles_dir", "format_table", "plot_results", "summarize",
           "write_summary_csv", "RunSpec", "StudyConfig", "plan_runs", "run_dir", "run_study", "run_training",
           "study_params", "train_missing"]
