"""Paper-scale configurations exist, build, and run one training step (they are too slow to train on a CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
from monai.bundle import ConfigWorkflow

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
TINY = {"m": 2, "n": 64, "a": 8, "b": 12, "n_val": 2, "n_test": 2, "mu_y": 0.5}


@pytest.mark.slow
@pytest.mark.parametrize("bundle, min_params", [("segmentation", 30e6), ("bbox_segmentation", 30e6),
                                                ("binary_classification", 20e6)])
def test_paper_scale_builds_and_trains_one_step(bundle, min_params, tmp_path):
    configs = BUNDLES / bundle / "configs"
    workflow = ConfigWorkflow(config_file=[str(configs / "train.yaml"), str(configs / "paper_scale.yaml")],
                              meta_file=str(configs / "metadata.json"), logging_file=False, workflow_type="train",
                              bundle_root=str(BUNDLES / bundle), output_dir=str(tmp_path), epochs=1, synthetic=TINY,
                              batch_size=2, val_batch_size=2)
    workflow.initialize()
    network = workflow.parser.get_parsed_content("network")
    assert sum(p.numel() for p in network.parameters()) > min_params
    before = [p.detach().clone() for p in network.parameters()][:5]
    workflow.run()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    assert trainer.state.iteration == 1
    assert any(not (a == b).all() for a, b in zip(before, list(network.parameters())[:5]))
    assert (tmp_path / "models" / "model.pt").is_file()
    workflow.finalize()
