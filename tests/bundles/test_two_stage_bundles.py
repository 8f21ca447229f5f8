"""The JTT and GEORGE bundles run both stages in one workflow, in-process (Saab et al. 2022, Table 1, App. A.2).

MONAI's property checks build the second-stage trainer before the first stage has written its output, so every test
calls ``check_properties()`` before ``run()``: the second stage must still read what the first stage writes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigWorkflow

from spatialspec import registry

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
# a minority group (y=1, s=0) in training, so the ERM model has something to get wrong
SMALL = {"m": 40, "n": 16, "a": 4, "b": 4, "n_val": 20, "n_test": 20, "mu_y": 0.5, "rho": 0.8}


def _workflow(name: str, out: Path, **overrides) -> ConfigWorkflow:
    meta = registry.meta_file(name, BUNDLES)
    return ConfigWorkflow(config_file=[str(f) for f in registry.config_files(name, bundles_dir=BUNDLES)],
                          meta_file=str(meta), logging_file=False, workflow_type="train",
                          bundle_root=str(meta.parents[1]), output_dir=str(out), synthetic=SMALL, batch_size=8,
                          val_batch_size=20, **overrides)


def test_jtt_second_stage_trains_on_the_upsampled_error_set(tmp_path):
    workflow = _workflow("jtt", tmp_path, erm_epochs=2, epochs=2, lambda_up=3)
    workflow.initialize()
    assert workflow.check_properties() == []
    assert not (tmp_path / "jtt_error_set.json").exists()
    workflow.run()

    record = json.loads((tmp_path / "jtt_error_set.json").read_text())
    errors = record["errors"]
    parser = workflow.parser
    base = parser.get_parsed_content("train#dataset")  # the cached training set
    # the error set is what the ERM network gets wrong on the training data, recomputed here
    erm_network = parser.get_parsed_content("erm#network").eval()
    images = torch.stack([torch.as_tensor(item["image"]) for item in base])
    labels = np.array([int(item["y"]) for item in base])
    with torch.no_grad():
        predicted = erm_network(images).argmax(dim=1).numpy()
    assert errors == np.flatnonzero(predicted != labels).tolist()
    assert record["n_samples"] == SMALL["m"] and record["copies_per_error"] == (4 if errors else 1)

    dataset = parser.get_parsed_content("train#upsampled")  # what stage 2 trains on
    assert parser.get_parsed_content("train#dataloader").dataset is dataset
    expected_len = SMALL["m"] + 3 * len(errors)
    assert len(dataset) == expected_len
    trainer = parser.get_parsed_content("train#trainer")
    assert trainer.state.epoch_length == math.ceil(expected_len / 8)
    assert trainer.state.iteration == 2 * math.ceil(expected_len / 8)
    assert trainer.network is not erm_network
    # the checkpoint is chosen on validation robust AUROC
    evaluator = parser.get_parsed_content("validate#evaluator")
    assert evaluator.state.key_metric_name == "val_robust_auroc"
    assert (tmp_path / "models" / "model.pt").is_file()
    workflow.finalize()


def test_george_second_stage_trains_with_group_dro_over_the_clusters(tmp_path):
    workflow = _workflow("george", tmp_path, erm_epochs=2, epochs=2, reducer="pca", k_max=4,
                         dro_step_size=0.5)
    workflow.initialize()
    assert workflow.check_properties() == []
    workflow.run()

    groups = json.loads((tmp_path / "george_groups.json").read_text())
    k = [c["k"] for c in groups["clusters"]]
    assert len(k) == 2 and all(2 <= c <= 4 for c in k) and groups["n_groups"] == sum(k)
    assert len(groups["groups"]["training"]) == SMALL["m"] and len(groups["groups"]["validation"]) == SMALL["n_val"]
    assert set(groups["alignment"]) == {"training", "validation"}

    parser = workflow.parser
    trainer = parser.get_parsed_content("train#trainer")
    # the group ids are in the batch, not in the output (both decollated into items after the iteration)
    assert all("group" in item for item in trainer.state.batch)
    assert not any("group" in item for item in trainer.state.output)
    base = parser.get_parsed_content("train#dataset")  # the cached training set
    assert parser.get_parsed_content("train#dataloader").dataset is parser.get_parsed_content("train#grouped")
    train_y = np.array([int(item["y"]) for item in base])
    ids = np.array(groups["groups"]["training"])
    assert (ids[train_y == 0] < k[0]).all() and (ids[train_y == 1] >= k[0]).all()
    objective = parser.get_parsed_content("train#loss")
    q = objective.group_loss.q
    assert q.shape == (groups["n_groups"],)
    assert math.isclose(float(q.sum()), 1.0, rel_tol=1e-6)
    # large steps on unequal group losses move q away from uniform
    assert float(q.max() - q.min()) > 1e-3
    assert [trainer.state.metrics[f"dro_q_{g}"] for g in range(groups["n_groups"])] == q.tolist()
    workflow.finalize()
