"""The bundles as overlays (issue 14): one registry, each config written once, every method resumable and
data-parallel by construction."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from spatialspec import registry

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
CONFIGS = sorted(BUNDLES.glob("*/configs/*.yaml"))
# the layout's budget: the YAML of all bundles together, and the longest block two files may share
MAX_LINES, MAX_SHARED_BLOCK = 1200, 20


def _content_lines(path: Path) -> list[str]:
    return [line.rstrip() for line in path.read_text().splitlines() if line.strip() and
            not line.strip().startswith("#")]


def longest_shared_block(a: list[str], b: list[str]) -> int:
    """The length of the longest run of consecutive lines ``a`` and ``b`` have in common."""
    best, previous = 0, [0] * (len(b) + 1)
    for i in range(1, len(a) + 1):
        current = [0] * (len(b) + 1)
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def test_longest_shared_block():
    assert longest_shared_block(["a", "b", "c", "d"], ["x", "b", "c", "y", "a"]) == 2
    assert longest_shared_block(["a"], ["b"]) == 0


def test_bundle_yaml_budget():
    total = sum(len(_content_lines(p)) for p in CONFIGS)
    assert CONFIGS and total <= MAX_LINES, f"bundle YAML has {total} non-blank, non-comment lines (at most {MAX_LINES})"


def test_no_two_configs_share_a_long_block():
    lines = {p: _content_lines(p) for p in CONFIGS}
    shared = [(longest_shared_block(lines[a], lines[b]), a.relative_to(BUNDLES), b.relative_to(BUNDLES))
              for a, b in itertools.combinations(CONFIGS, 2)]
    too_long = [s for s in shared if s[0] > MAX_SHARED_BLOCK]
    assert not too_long, f"config files sharing more than {MAX_SHARED_BLOCK} lines: {too_long}"


def _merged(files: list[Path]) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(f) for f in files])
    return parser


@pytest.mark.parametrize("name", list(registry.METHODS))
def test_every_method_resumes_and_has_ddp(name):
    """Every chain starts with the common training workflow, so every method has the resume handler among its train
    handlers, and merges the one DDP config."""
    entry = registry.method(name)
    train = _merged(registry.config_files(name))
    assert train["train#resume"]["_target_"] == "spatialspec.handlers.ResumeHandler"
    assert {"_target_": "spatialspec.handlers.AttachToTrainer", "handlers": ["@train#resume"]} in \
        train["train#handlers"]
    assert train["run_params"]["bundle"] == entry.bundle
    assert train["bundle_root"] == f"bundles/{entry.bundle}"
    assert train["family"] == entry.family
    ddp = _merged(registry.config_files(name, multi_gpu=True))
    assert ddp["distributed"] is True and ddp["train#dataloader#sampler"] == "@train#sampler"
    for kind in ("evaluate", "inference"):
        assert registry.config_files(name, kind)[-1] == BUNDLES / "common" / "configs" / f"{kind}.yaml"


@pytest.mark.parametrize("name", list(registry.METHODS))
def test_every_method_builds_at_paper_scale_and_on_each_dataset(name):
    """Paper-scale networks and the data-set configs combine with every method: the merged configs build the
    network and the training preprocessing (no data is read)."""
    for options in ({"paper_scale": True}, {"dataset": "siim"}, {"dataset": "isic", "paper_scale": True}):
        parser = _merged(registry.config_files(name, **options))
        network = parser.get_parsed_content("network_def")
        assert sum(p.numel() for p in network.parameters()) > 0
        assert parser.get_parsed_content("train#preprocessing") is not None


def test_config_order_of_a_paper_scale_baseline():
    files = [str(p.relative_to(BUNDLES)) for p in registry.config_files("jtt", "evaluate", dataset="siim",
                                                                        paper_scale=True)]
    assert files == ["common/configs/train.yaml", "binary_classification/configs/train.yaml",
                     "binary_classification/configs/paper_scale.yaml", "binary_classification/configs/erm_stage.yaml",
                     "jtt_classification/configs/train.yaml",
                     "binary_classification/configs/erm_stage_paper_scale.yaml",
                     "jtt_classification/configs/paper_scale.yaml", "common/configs/siim.yaml",
                     "common/configs/evaluate.yaml"]


def test_method_for_run():
    assert registry.method_for_run("bbox:all", "pixel").name == "bbox"
    assert registry.method_for_run("patch:4", "pixel").name == "seg"
    assert registry.method_for_run("binary", "jtt").bundle == "jtt_classification"
    with pytest.raises(ValueError, match="binary"):
        registry.method_for_run("seg", "jtt")
    with pytest.raises(ValueError, match="unknown model"):
        registry.method_for_run("seg", "nope")
    with pytest.raises(ValueError, match="unknown method"):
        registry.method("nope")


def test_bundle_config_files_of_a_source_bundle_is_its_chain():
    assert registry.bundle_config_files(BUNDLES / "seg_ssl") == registry.config_files("seg-ssl")
    assert registry.bundle_config_files(BUNDLES / "segmentation", ["train.yaml", "spl.yaml"]) == \
        registry.config_files("seg-spl")
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        registry.bundle_config_files(BUNDLES / "segmentation", ["train.yaml", "nope.yaml"])
