"""Label budgets (Sec. 5.2, Fig. 4) in the bundles and the study, and the Seg-SSL bundle and the Seg-SPL config
(Sec. 4.2.1, 4.2.2). The workflow tests use tiny synthetic data and write only into pytest's ``tmp_path``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow
from monai.networks.nets import UNet

from spatialspec import registry
from spatialspec.cli.study import location_budgets
from spatialspec.data import load_split
from spatialspec.data.subsample import location_subset
from spatialspec.study import RunSpec, StudyConfig, study_runs, summarize
from spatialspec.study.bundles import bundle_for, study_level
from spatialspec.study.report import row_label

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLES = REPO_ROOT / "bundles"
TINY = {"m": 24, "n": 16, "a": 4, "b": 4, "n_val": 10, "n_test": 20, "mu_y": 0.5}


def _chain(paths) -> list[str]:
    """Config paths as ``bundle/configs/file``."""
    return ["/".join(Path(p).parts[-3:]) for p in paths]


# ---- a study's runs with budgets (no training) ---------------------------------------------------------------------


def test_study_runs_with_budgets_and_methods():
    config = StudyConfig(levels=["binary", "bbox", "seg", "seg-ssl", "SEG-SPL", "jtt"], seeds=[0, 1],
                         location_labels=[10, 40])
    runs = study_runs(config)
    keys = [r.key for r in runs]
    assert len(set(keys)) == len(keys)
    assert [r.key for r in runs if r.level == "binary"] == ["binary-pixel-s0", "binary-pixel-s1", "binary-jtt-s0",
                                                            "binary-jtt-s1"]
    assert all(r.location_labels is None for r in runs if r.level == "binary")
    assert [r.key for r in runs if r.model == "ssl"] == ["seg-ssl-n10-s0", "seg-ssl-n10-s1", "seg-ssl-n40-s0",
                                                         "seg-ssl-n40-s1"]
    by_key = {r.key: r for r in runs}
    assert by_key["seg-spl-n40-s1"].bundle == "segmentation"
    pixelwise = ["common/configs/train.yaml", "segmentation/configs/train.yaml"]
    assert _chain(by_key["seg-spl-n40-s1"].config_files()) == [*pixelwise, "segmentation/configs/spl.yaml"]
    assert by_key["seg-ssl-n10-s0"].bundle == "seg_ssl"
    assert _chain(by_key["seg-ssl-n10-s0"].config_files()) == [*pixelwise, "seg_ssl/configs/train.yaml"]
    assert _chain(by_key["seg-pixel-n10-s0"].config_files()) == pixelwise
    assert by_key["bbox-pixel-n10-s0"].bundle == "bbox_segmentation"
    assert len(runs) == 2 * 2 + 4 * 2 * 2  # binary + jtt once per seed; 4 location entries x 2 budgets x 2 seeds
    # without budgets the keys are the historical ones
    assert [r.key for r in study_runs(StudyConfig(levels=["seg"], seeds=[0]))] == ["seg-pixel-s0"]
    assert RunSpec("seg", "pixel", 0, "segmentation").location_labels is None


def test_method_entries_and_budget_validation():
    assert study_level(" Seg-SSL ") == "seg-ssl"
    assert bundle_for("seg", "ssl") == "seg_ssl"
    assert registry.method_for_run("seg", "spl").overlays == ("segmentation/configs/spl.yaml",)
    assert registry.method_for_run("seg", "pixel").overlays == ()
    with pytest.raises(ValueError, match=r"trains the level\(s\) seg only, not 'bbox'"):
        bundle_for("bbox", "spl")
    with pytest.raises(ValueError, match="seg-ssl, seg-spl"):
        study_level("seg-mixup")
    for bad in ([0], [10, 10], [], ["ten"]):
        with pytest.raises(ValueError, match="location_labels"):
            StudyConfig(location_labels=bad)
    assert location_budgets("5, 10,all") == [5, 10, None]
    with pytest.raises(ValueError, match="--location-labels"):
        location_budgets("5,0")


def test_summary_and_labels_per_budget():
    records = [{"level": "seg", "model": m, "score": "mean", "seed": s, "location_labels": n, "robust_auroc": v,
                "overall_auroc": v, "worst_pair_auroc": v, "wall_s": 1.0}
               for m, n, s, v in (("pixel", 10, 0, 0.5), ("pixel", 10, 1, 0.7), ("pixel", 40, 0, 0.9),
                                  ("ssl", 10, 0, 0.8))]
    rows = summarize(records)
    assert [(r["model"], r["location_labels"], r["n_seeds"]) for r in rows] == [("pixel", 10, 2), ("pixel", 40, 1),
                                                                               ("ssl", 10, 1)]
    assert rows[0]["robust_auroc_mean"] == pytest.approx(0.6) and rows[0]["robust_auroc_std"] == pytest.approx(0.1)
    assert [row_label(r) for r in rows] == ["seg n=10", "seg n=40", "seg (ssl) n=10"]
    assert row_label({"level": "seg", "model": "pixel"}) == "seg"


# ---- the bundles, in-process ----------------------------------------------------------------------------------------


def _workflow(name: str, out: Path, **overrides) -> ConfigWorkflow:
    meta = registry.meta_file(name, BUNDLES)
    return ConfigWorkflow(config_file=[str(f) for f in registry.config_files(name, bundles_dir=BUNDLES)],
                          meta_file=str(meta), logging_file=False, workflow_type="train",
                          bundle_root=str(meta.parents[1]), output_dir=str(out), synthetic=TINY, batch_size=8,
                          val_batch_size=10, **overrides)


@pytest.mark.slow
def test_every_location_bundle_gets_the_same_labelled_images(tmp_path):
    expected = [e["id"] for e in location_subset(load_split("training", None, TINY, 1), 6, 1)]
    for name in ("seg", "bbox", "seg-spl"):
        workflow = _workflow(name, tmp_path / name, location_labels=6, seed=1)
        workflow.initialize()
        assert workflow.check_properties() == []
        assert [e["id"] for e in workflow.parser.get_parsed_content("train#data")] == expected
        assert len(workflow.parser.get_parsed_content("train#dataset")) == 6
    ssl = _workflow("seg-ssl", tmp_path / "ssl", location_labels=6, seed=1)
    ssl.initialize()
    assert ssl.check_properties() == []
    data = ssl.parser.get_parsed_content("train#data")
    assert [e["id"] for e in data if e["labelled"]] == expected and len(data) == TINY["m"]
    labelled = ssl.parser.get_parsed_content("initial#dataloader").dataset
    assert [data[i]["id"] for i in labelled.indices] == expected


@pytest.mark.slow
def test_spl_config_trains_with_the_pixel_similarity_objective(tmp_path):
    workflow = _workflow("seg-spl", tmp_path, location_labels=8, epochs=2, spl_weight=0.5)
    workflow.initialize()
    workflow.run()
    parser = workflow.parser
    objective = parser.get_parsed_content("spl_objective")
    trainer = parser.get_parsed_content("train#trainer")
    assert trainer.loss_function is objective and objective.spl_weight == 0.5
    assert objective.hook.layer == "model.2"
    assert trainer.state.iteration == 2  # 8 samples, batch 8, 2 epochs
    assert parser.get_parsed_content("run_params")["method"] == "spl"
    assert (tmp_path / "models" / "model.pt").is_file()
    workflow.finalize()


@pytest.mark.slow
def test_seg_ssl_pseudo_labels_are_the_initial_networks_predictions(tmp_path):
    workflow = _workflow("seg-ssl", tmp_path, location_labels=6, epochs=2, initial_epochs=2)
    workflow.initialize()
    workflow.run()
    parser = workflow.parser
    data = parser.get_parsed_content("train#data")
    unlabelled = [i for i, e in enumerate(data) if not e["labelled"]]
    content = np.load(tmp_path / "pseudo_labels.npz")
    assert content["indices"].tolist() == unlabelled
    # recompute the pseudo-labels from step 1's best checkpoint, independently of the writer
    network = UNet(2, 1, 2, channels=(16, 32, 64), strides=(2, 2), num_res_units=1, norm="batch")
    network.load_state_dict(torch.load(tmp_path / "models" / "initial_model.pt", weights_only=True))
    network.eval()
    images = torch.stack([torch.as_tensor(data[i]["image"]) for i in unlabelled])
    with torch.no_grad():
        expected = network(images).argmax(dim=1, keepdim=True).numpy().astype(np.uint8)
    assert np.array_equal(content["masks"], expected)
    # step 2 trains on every training image (labels + pseudo-labels), step 1 on the labelled ones only
    assert parser.get_parsed_content("initial#trainer").state.iteration == 2 * 1
    trainer = parser.get_parsed_content("train#trainer")
    assert trainer.state.iteration == 2 * 3  # 24 images, batch 8
    assert {"ssl_ce", "ssl_similarity"} <= set(trainer.state.metrics)
    step2 = parser.get_parsed_content("train#pseudo_labelled")
    assert parser.get_parsed_content("train#dataloader").dataset is step2
    assert np.array_equal(step2[unlabelled[0]]["label"].numpy(), expected[0].astype(np.float32))
    assert (tmp_path / "models" / "model.pt").is_file()
    workflow.finalize()


# ---- the bundles as a user runs them ---------------------------------------------------------------------------------


def _monai_bundle(args: list[str], log: Path) -> tuple[int, str]:
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, "-m", "monai.bundle", *args], cwd=REPO_ROOT, stdout=out,
                              stderr=subprocess.STDOUT, timeout=300)
    return proc.returncode, log.read_text(errors="replace")[-4000:]


def _config_arg(name: str, kind: str) -> str:
    """``--config_file``: the registry's chain relative to the repository root, as a list literal (python-fire
    parses it into a list; MONAI 1.6.1 refuses a comma-joined string)."""
    return repr([str(p.relative_to(REPO_ROOT)) for p in registry.config_files(name, kind, bundles_dir=BUNDLES)])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["seg-spl", "seg-ssl", "bbox"])
def test_monai_bundle_run_one_epoch_with_a_budget_then_evaluate(name, tmp_path):
    out = tmp_path / "out"
    common = ["--meta_file", str(registry.meta_file(name, BUNDLES).relative_to(REPO_ROOT)), "--output_dir", str(out),
              "--synthetic", repr(TINY), "--location_labels", "6"]
    code, log = _monai_bundle(["run", "--config_file", _config_arg(name, "train"), "--epochs", "1", *common],
                              tmp_path / "train.log")
    assert code == 0, log
    assert (out / "models" / "model.pt").is_file()
    code, log = _monai_bundle(["run", "--config_file", _config_arg(name, "evaluate"), *common],
                              tmp_path / "evaluate.log")
    assert code == 0, log
    assert "test_robust_auroc" in (out / "metrics.csv").read_text()
