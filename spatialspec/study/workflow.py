"""Building the bundle workflows of a study's runs (Saab et al. 2022, Sec. 3.3: one training and one test evaluation
per run) and the MLflow settings of their engines."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monai.bundle import ConfigWorkflow

__all__ = ["build_workflow", "tracking_settings"]


def _overlay_notice(record: Any) -> bool:
    """False for MONAI's notice that a workflow's configs span folders: every spatialspec run is an overlay chain
    (:mod:`spatialspec.registry`), and its meta file is always given."""
    return not str(record.getMessage()).startswith("Not all config files are in ")


def build_workflow(config_files: list[Path], meta_file: Path, tracking: dict | None,
                   **overrides: Any) -> ConfigWorkflow:
    """A run's bundle workflow: ``config_files`` merged in order (:mod:`spatialspec.registry`), ``overrides`` as
    command-line settings, MLflow ``tracking`` settings or ``None``; the chain's merged content and MONAI's component
    table are shared with the process's earlier workflows (:mod:`.config_cache`, :mod:`.locator`). Imports torch and
    MONAI on first use."""
    from monai.bundle import ConfigWorkflow

    from .config_cache import merged_config_file
    from .locator import share_component_table

    monai_logger = logging.getLogger("monai.bundle.workflows")
    if _overlay_notice not in monai_logger.filters:
        monai_logger.addFilter(_overlay_notice)

    # the chain merged once per process (.config_cache), not parsed again for every workflow (issue 17)
    workflow = ConfigWorkflow(config_file=merged_config_file(config_files), meta_file=str(meta_file),
                              logging_file=False, workflow_type=None, tracking=tracking, **overrides)
    share_component_table(workflow.parser)  # MONAI's component table, built once per process (issue 17)
    return workflow


def tracking_settings(buffer_file: str | Path | None = None) -> dict:
    """MONAI's MLflow settings for the trainer and validator only (test figures are logged by the study), with
    :class:`~spatialspec.tracking.BufferedMLFlowHandler`: an unreachable server buffers the records in
    ``buffer_file`` (``spatialspec sync`` pushes them)."""
    from spatialspec.tracking.settings import mlflow_settings  # MONAI's defaults

    return mlflow_settings(None if buffer_file is None else str(buffer_file), engines=("trainer", "validator"))
