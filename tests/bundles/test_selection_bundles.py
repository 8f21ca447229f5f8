"""Every level and method (spatialspec.registry) builds its validator and checkpoint saver from its ``select``
setting (spatialspec.handlers.selection) and records the validation loss with a ConvergenceMonitor
(``until_converged``, ``patience``); one tiny training per model family (pixel-wise, classifier, two-stage) runs
in-process."""

from __future__ import annotations

import operator
import re
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow

from spatialspec import registry
from spatialspec.handlers import STUDY_RULES, ConvergenceMonitor, SelectionCheckpointSaver
from spatialspec.handlers.selection import keep_latest

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
ALL = tuple(registry.METHODS)
TINY = {"m": 20, "n": 16, "a": 4, "b": 4, "n_val": 10, "n_test": 20, "mu_y": 0.5}
CMP = {"val_loss": operator.lt, "val_robust_auroc": operator.gt, "val_worst_group_auroc": operator.gt,
       "last": keep_latest}


def _parser(name: str, paper_scale: bool = False, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(f) for f in registry.config_files(name, paper_scale=paper_scale, bundles_dir=BUNDLES)])
    parser.update({"bundle_root": str(registry.meta_file(name, BUNDLES).parents[1]), **overrides})
    return parser


def _component(parser: ConfigParser, value):
    """A config entry, or the entry an ``@id`` reference names."""
    return parser[value[1:]] if isinstance(value, str) and value.startswith("@") else value


@pytest.mark.parametrize("name", ALL)
def test_default_rule_and_settings(name):
    parser = _parser(name)
    assert parser["until_converged"] is False and parser["patience"] == 20
    assert {"select", "until_converged", "patience"} <= set(parser["run_params"])
    # MONAI's property checks want every train handler to be a _target_ entry, so objects defined under an id are
    # listed through AttachToTrainer: the convergence monitor, and the resume handler that saves it with the run
    assert all(isinstance(h, dict) and "_target_" in h for h in parser["train#handlers"]), parser["train#handlers"]
    attached = [a for h in parser["train#handlers"] if h["_target_"] == "spatialspec.handlers.AttachToTrainer"
                for a in _component(parser, h["handlers"])]
    assert "@train#convergence" in attached
    handlers = [_component(parser, h) for h in (*parser["train#handlers"], *attached)]
    resume = [h for h in handlers if h["_target_"] == "spatialspec.handlers.ResumeHandler"]
    assert [h["save_dict"]["convergence"] for h in resume] == ["@train#convergence"]
    # JTT and GEORGE keep their worst-group selection when run on their own; every other method the paper's (parsed
    # last: parsing rewrites the raw references read above)
    assert parser.get_parsed_content("select") == ("val_robust_auroc" if name in ("jtt", "george") else "val_loss")


@pytest.mark.parametrize("select", STUDY_RULES)
@pytest.mark.parametrize("name", ALL)
def test_every_rule_builds(name, select, tmp_path):
    parser = _parser(name, select=select, output_dir=str(tmp_path))
    key = parser.get_parsed_content("validate#key_metric")
    extra = parser.get_parsed_content("validate#additional_metrics")
    assert list(key) == [{"last": "val_loss"}.get(select, select)]
    assert "val_loss" in {*key, *extra}  # convergence needs it under every rule
    assert parser.get_parsed_content("selection").metric_cmp_fn is CMP[select]
    saver = parser.get_parsed_content("validate#saver")
    assert isinstance(saver, SelectionCheckpointSaver) and saver.selection.rule == select
    assert parser.get_parsed_content("validate#saver") in parser.get_parsed_content("validate#handlers")


@pytest.mark.parametrize("name, rule", [("seg", "val_mean_dice"), ("bbox", "val_mean_dice"),
                                        ("classifier", "val_overall_auroc")])
def test_paper_scale_selects_by_name(name, rule, tmp_path):
    """App. A.1's checkpoint rules are a `select` value, with no list-position override; --select still wins."""
    for path in registry.config_files(name, paper_scale=True, bundles_dir=BUNDLES):
        # no key such as validate#handlers#1#key_metric_negative_sign
        assert not re.search(r"^\+?\w[\w#]*#\d+\b", path.read_text(), re.MULTILINE), path
    parser = _parser(name, paper_scale=True, output_dir=str(tmp_path))
    assert parser["select"] == rule
    assert list(parser.get_parsed_content("validate#key_metric")) == [rule]
    assert parser.get_parsed_content("selection").metric_cmp_fn is operator.gt
    assert not parser.get_parsed_content("selection").negative_sign
    assert list(_parser(name, paper_scale=True, select="val_loss").get_parsed_content("validate#key_metric")) == \
        ["val_loss"]


def _workflow(name: str, out: Path, **overrides) -> ConfigWorkflow:
    meta = registry.meta_file(name, BUNDLES)
    return ConfigWorkflow(config_file=[str(f) for f in registry.config_files(name, bundles_dir=BUNDLES)],
                          meta_file=str(meta), logging_file=False, workflow_type="train",
                          bundle_root=str(meta.parents[1]), output_dir=str(out), synthetic=TINY, batch_size=8,
                          val_batch_size=20, **overrides)


def _run(name: str, out: Path, **overrides) -> tuple[ConfigWorkflow, dict]:
    workflow = _workflow(name, out, **overrides)
    workflow.initialize()
    workflow.run()
    summary = workflow.parser.get_parsed_content("train#convergence").summary()
    return workflow, summary


def test_last_keeps_the_final_weights_and_flags_non_convergence(tmp_path):
    workflow, summary = _run("classifier", tmp_path, select="last", epochs=2)
    evaluator = workflow.parser.get_parsed_content("validate#evaluator")
    assert evaluator.state.key_metric_name == "val_loss" and evaluator.state.best_metric_epoch == 2
    network = workflow.parser.get_parsed_content("network")
    saved = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in network.state_dict().items())
    # two epochs with patience 20: the validation loss cannot have stopped improving 20 epochs before the end
    assert summary["converged"] is False and summary["epochs_trained"] == 2
    workflow.finalize()


def test_until_converged_stops_early_and_a_rerun_trains_no_further(tmp_path):
    # a large learning rate: the validation loss of seed 0 jumps after epoch 3, so patience 1 stops after epoch 4
    overrides = dict(select="val_loss", epochs=8, until_converged=True, patience=1, learning_rate=0.1)
    workflow, summary = _run("seg", tmp_path, **overrides)
    monitor = workflow.parser.get_parsed_content("train#convergence")
    best = summary["val_loss_best_epoch"]
    assert summary == {"converged": True, "val_loss_best_epoch": best, "epochs_trained": best + 1,
                       "stopped_early": True, "patience": 1}
    assert summary["epochs_trained"] < 8
    evaluator = workflow.parser.get_parsed_content("validate#evaluator")
    assert evaluator.state.best_metric_epoch == best  # the kept checkpoint is the best validation loss
    history = list(monitor.history)
    workflow.finalize()
    # the same command again resumes the finished run: nothing more is trained, the history is the same
    again, summary_again = _run("seg", tmp_path, **overrides)
    assert summary_again == summary
    assert again.parser.get_parsed_content("train#convergence").history == history
    assert isinstance(again.parser.get_parsed_content("train#convergence"), ConvergenceMonitor)
    again.finalize()


def test_two_stage_bundle_worst_group_rule(tmp_path):
    workflow, summary = _run("jtt", tmp_path, select="val_worst_group_auroc", epochs=2, erm_epochs=1)
    evaluator = workflow.parser.get_parsed_content("validate#evaluator")
    assert evaluator.state.key_metric_name == "val_worst_group_auroc"
    metrics = evaluator.state.metrics
    assert metrics["val_worst_group_auroc"] == metrics["val_worst_pair_auroc"]
    assert [e for e, _ in workflow.parser.get_parsed_content("train#convergence").history] == [1, 2]
    assert (tmp_path / "models" / "model.pt").is_file()
    workflow.finalize()
