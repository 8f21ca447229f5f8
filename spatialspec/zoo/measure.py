"""Test figures of an exported bundle's checkpoint, measured by the bundle itself: its ``configs/train.yaml`` +
``configs/evaluate.yaml`` run as a MONAI :class:`~monai.bundle.ConfigWorkflow` (as ``spatialspec study`` evaluates a
run), on the test split of its configured data (Saab et al. 2022, Sec. 3.3.2 and 5: robust, overall and subgroup
AUROC)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["measure_test_figures"]


def measure_test_figures(bundle_dir: str | os.PathLike, overrides: Mapping[str, Any] | None = None
                         ) -> tuple[dict[str, float], int]:
    """Run the exported bundle's evaluate workflow on its shipped ``models/model.pt``.

    Args:
        bundle_dir: the exported bundle folder (``configs/train.yaml``, ``configs/evaluate.yaml``,
            ``configs/metadata.json``, ``models/model.pt``).
        overrides: config overrides of the run (e.g. ``dataset_dir``, ``synthetic``, ``val_batch_size``,
            ``eval_split``); ``bundle_root`` is the folder and the outputs go to a temporary folder.

    Returns:
        every ``test_*`` figure of the evaluator (``test_loss``, ``test_robust_auroc``, ``test_overall_auroc``, ...)
        and the number of images evaluated.
    """
    from monai.bundle import ConfigWorkflow

    configs = Path(bundle_dir) / "configs"
    with tempfile.TemporaryDirectory(prefix="spatialspec-export-eval-") as out:
        workflow = ConfigWorkflow(config_file=[str(configs / "train.yaml"), str(configs / "evaluate.yaml")],
                                  meta_file=str(configs / "metadata.json"), logging_file=False, workflow_type=None,
                                  **{**dict(overrides or {}), "bundle_root": str(bundle_dir), "output_dir": out})
        workflow.initialize()
        workflow.run()
        engine = workflow.parser.get_parsed_content("validate#evaluator")
        figures = {k: float(v) for k, v in engine.state.metrics.items() if k.startswith("test_")}
        count = len(engine.data_loader.dataset)
        workflow.finalize()
    return figures, count
