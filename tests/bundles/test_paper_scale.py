"""Paper-scale configurations exist, build, and run one training step (they are too slow to train on a CPU)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow
from sklearn.metrics import roc_auc_score

from spatialspec import registry

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
# the binary-label baselines train an ERM model first: one epoch of it, and PCA for GEORGE's clustering
TWO_STAGE = {"jtt": {"erm_epochs": 1}, "george": {"erm_epochs": 1, "reducer": "pca"}}
TINY = {"m": 2, "n": 64, "a": 8, "b": 12, "n_val": 2, "n_test": 2, "mu_y": 0.5}
# the checkpoint's key metric (App. A.1): validation mean Dice, validation AUROC; with mu_y 0.7 the two validation
# images of seed 0 are one normal and one abnormal image, so both are defined
KEY_METRIC = {"seg": "val_mean_dice", "bbox": "val_mean_dice", "classifier": "val_overall_auroc"}


@pytest.mark.slow
@pytest.mark.parametrize("name, min_params", [("seg", 30e6), ("bbox", 30e6), ("classifier", 20e6), ("jtt", 20e6),
                                              ("george", 20e6)])
def test_paper_scale_builds_and_trains_one_step(name, min_params, tmp_path):
    meta = registry.meta_file(name, BUNDLES)
    files = registry.config_files(name, paper_scale=True, bundles_dir=BUNDLES)
    workflow = ConfigWorkflow(config_file=[str(f) for f in files], meta_file=str(meta), logging_file=False,
                              workflow_type="train", bundle_root=str(meta.parents[1]), output_dir=str(tmp_path),
                              epochs=1, synthetic={**TINY, "mu_y": 0.7} if name in KEY_METRIC else TINY,
                              batch_size=2, val_batch_size=2, **TWO_STAGE.get(name, {}))
    workflow.initialize()
    network = workflow.parser.get_parsed_content("network")
    assert sum(p.numel() for p in network.parameters()) > min_params
    before = [p.detach().clone() for p in network.parameters()][:5]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        workflow.run()
    # the train loss reaches StatsHandler (and MONAI's --tracking mlflow handler, same output transform) as a scalar
    assert not [w for w in caught if "non-scalar output in StatsHandler" in str(w.message)]
    trainer = workflow.parser.get_parsed_content("train#trainer")
    assert trainer.state.iteration == 1
    if name in TWO_STAGE:  # the first (ERM) stage ran its one step too, on its own network
        erm = workflow.parser.get_parsed_content("erm#trainer")
        assert erm.state.iteration == 1 and erm.network is not network
        assert isinstance(workflow.parser.get_parsed_content("optimizer"), torch.optim.SGD)
    assert any(not (a == b).all() for a, b in zip(before, list(network.parameters())[:5]))
    assert (tmp_path / "models" / "model.pt").is_file()
    evaluator = workflow.parser.get_parsed_content("validate#evaluator")
    if name in KEY_METRIC:  # App. A.1: the checkpoint follows validation mean Dice / validation AUROC
        assert evaluator.state.key_metric_name == KEY_METRIC[name]
        assert {"val_loss", "val_robust_auroc", "val_overall_auroc"} <= set(evaluator.state.metrics)
        loader = workflow.parser.get_parsed_content("validate#dataloader")
        y = [int(v) for batch in loader for v in batch["y"]]
        assert sorted(y) == [0, 1]  # both classes: every figure checked below is defined
        network.eval()
        with torch.no_grad():
            scores = [float(v) for batch in loader for v in
                      torch.softmax(network(batch["image"]), dim=1)[:, 1].reshape(len(batch["y"]), -1).mean(dim=1)]
        assert evaluator.state.metrics["val_overall_auroc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-9)
    if registry.method(name).family == "pixelwise":
        assert workflow.parser.get_parsed_content("learning_rate") == 5e-4
        dice = _recomputed_dice(network, workflow.parser.get_parsed_content("validate#dataloader"))
        assert not math.isnan(dice)
        assert evaluator.state.metrics["val_mean_dice"] == pytest.approx(dice, abs=1e-6)
        names = [type(t).__name__ for t in workflow.parser.get_parsed_content("train#dataset").transform.transforms]
        assert {"RandAffined", "Rand2DElasticd", "RandStdShiftIntensityd", "RandScaleIntensityFixedMeand"} <= \
            set(names)
    workflow.finalize()


def _recomputed_dice(network: torch.nn.Module, loader) -> float:
    """Mean Dice of the argmax prediction against the label over (image, foreground class) pairs with a non-empty
    label, computed with numpy (MONAI's ignore_empty convention)."""
    network.eval()
    values = []
    with torch.no_grad():
        for batch in loader:
            logits = network(batch["image"])
            pred = logits.argmax(dim=1).numpy()
            label = batch["label"][:, 0].numpy().round().astype(int)
            for c in range(1, logits.shape[1]):
                for p, g in zip(pred == c, label == c):
                    if g.any():
                        values.append(2.0 * (p & g).sum() / (p.sum() + g.sum()))
    return float(np.mean(values)) if values else float("nan")
