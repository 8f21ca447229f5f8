"""The ``mixed`` method (issue 15, Sec. 3): which images keep which label, its target transform and its bundle
config run in-process on tiny synthetic data (only pytest's ``tmp_path`` is written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from monai.bundle import ConfigWorkflow

from spatialspec import registry
from spatialspec.data import load_split
from spatialspec.data.subsample import location_subset
from spatialspec.mixed import BINARY, MixedSpecificityLabeld, flag_mixed_labels

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
TINY = {"m": 24, "n": 16, "a": 4, "b": 4, "n_val": 10, "n_test": 20, "mu_y": 0.5}


def _data(n_pos: int = 10, n: int = 40) -> list[dict]:
    return [{"id": i, "y": int(i < n_pos)} for i in range(n)]


def test_budget_keeps_the_seg_erm_images_and_every_other_image_as_binary():
    data = _data()
    flagged = flag_mixed_labels(data, 8, seed=3)
    assert len(flagged) == len(data)
    labelled = {e["id"] for e in location_subset(data, 8, 3)}
    assert {e["id"] for e in flagged if e["location_level"] == "seg" and e["id"] in labelled} == labelled
    # beyond the budget: positives binary, negatives keep their free all-background label
    beyond = [e for e in flagged if e["id"] not in labelled]
    positives_beyond = 10 - sum(e["y"] for e in data if e["id"] in labelled)
    assert sum(e["location_level"] == BINARY for e in beyond) == positives_beyond
    assert all(e["has_location"] == int(e["location_level"] != BINARY) for e in flagged)
    assert all(e["has_location"] == 1 for e in flagged if e["y"] == 0)
    # without free negatives every image beyond the budget is binary
    strict = flag_mixed_labels(data, 8, seed=3, free_negatives=False)
    assert sum(e["location_level"] == BINARY for e in strict) == len(data) - 8
    # no budget: every image labelled at the level
    assert {e["location_level"] for e in flag_mixed_labels(data, None, level="bbox")} == {"bbox"}


def test_mix_is_nested_in_the_budget_order():
    data = _data()
    flagged = flag_mixed_labels(data, 6, seed=0, mix={"seg": 2, "bbox": 4})
    first_two = {e["id"] for e in location_subset(data, 2, 0)}
    first_six = {e["id"] for e in location_subset(data, 6, 0)}
    assert {e["id"] for e in flagged if e["location_level"] == "seg" and e["id"] in first_six} == first_two
    assert {e["id"] for e in flagged if e["location_level"] == "bbox"} == first_six - first_two
    assert all(e["location_level"] in ("seg", BINARY) for e in flagged if e["id"] not in first_six)


@pytest.mark.parametrize("n, mix, match", [
    (None, {"seg": "x"}, "location_mix: the count of 'seg'"), (None, {"seg": 30, "bbox": 20}, "location_labels"),
    (5, {"seg": 2, "bbox": 4}, "location_mix: its 6 labels"), (None, {"binary": 3}, "no location label"),
    (None, {"cube": 3}, "location_mix"), (41, None, "location_labels")])
def test_bad_mix_or_budget_names_itself(n, mix, match):
    with pytest.raises(ValueError, match=match):
        flag_mixed_labels(_data(), n, mix=mix)


def test_target_applies_each_items_level():
    mask = np.zeros((1, 12, 12), dtype=np.float32)
    mask[0, 2:5, 2] = 1
    mask[0, 2, 2:5] = 1  # an L: 5 pixels, its box 9
    t = MixedSpecificityLabeld("label", level="seg")
    sums = {lv: float(t({"label": mask, "location_level": lv})["label"].sum()) for lv in ("seg", "bbox", BINARY)}
    assert sums == {"seg": 5.0, "bbox": 9.0, BINARY: 0.0}
    assert float(t({"label": mask})["label"].sum()) == 5.0  # validation: the run's level


def _workflow(out: Path, **overrides) -> ConfigWorkflow:
    meta = registry.meta_file("mixed", BUNDLES)
    return ConfigWorkflow(config_file=[str(f) for f in registry.config_files("mixed", bundles_dir=BUNDLES)],
                          meta_file=str(meta), logging_file=False, workflow_type="train",
                          bundle_root=str(meta.parents[1]), output_dir=str(out), synthetic=TINY, batch_size=12,
                          val_batch_size=10, **overrides)


@pytest.mark.slow
def test_bundle_trains_every_image_with_the_mixed_objective(tmp_path):
    workflow = _workflow(tmp_path, location_labels=6, location_mix={"seg": 2, "bbox": 4}, epochs=1, seed=1)
    workflow.initialize()
    assert workflow.check_properties() == []
    parser = workflow.parser
    data = parser.get_parsed_content("train#data")
    assert len(data) == TINY["m"] and len(parser.get_parsed_content("train#dataset")) == TINY["m"]
    levels = [e["location_level"] for e in data]
    assert (levels.count("bbox"), levels.count(BINARY)) == (4, sum(e["y"] for e in data) - sum(
        e["y"] for e in location_subset(load_split("training", None, TINY, 1), 6, 1)))
    # the binary images' masks are hidden in what the trainer reads
    dataset = parser.get_parsed_content("train#dataset")
    assert all(float(dataset[i]["label"].sum()) == 0 for i, e in enumerate(data) if e["location_level"] == BINARY)
    workflow.run()
    trainer = parser.get_parsed_content("train#trainer")
    assert trainer.loss_function is parser.get_parsed_content("mixed_objective")
    assert trainer.state.iteration == 2  # every one of the 24 images trains, batch 12
    metrics = trainer.state.metrics
    assert 0 < metrics["mixed_located"] < 1 and metrics["mixed_mil"] > 0 and metrics["mixed_pixel"] > 0
    assert parser.get_parsed_content("run_params")["location_mix"] == {"seg": 2, "bbox": 4}
    assert (tmp_path / "models" / "model.pt").is_file()
    workflow.finalize()
