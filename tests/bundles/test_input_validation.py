"""Every bundle config checks its datalist first thing in ``initialize`` (spatialspec.data.validate_datalist): the
splits it reads, with the abnormal mask required by the pixel-wise bundles only. Configs are parsed and the one
expression evaluated; nothing is trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from spatialspec.data import DatalistError, SyntheticParams, write_synthetic_datalist
from spatialspec.errors import root_cause

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
IMAGE_LABEL_BUNDLES = ("binary_classification", "jtt_classification", "george_classification")
# config files as they are run: train, DDP train, evaluation (merged after train.yaml), inference
CONFIG_SETS = {"train": ("train.yaml",), "multi_gpu": ("train.yaml", "multi_gpu_train.yaml"),
               "evaluate": ("train.yaml", "evaluate.yaml"), "inference": ("inference.yaml",)}
CASES = [(bundle.name, kind) for bundle in sorted(BUNDLES.iterdir()) if (bundle / "configs" / "train.yaml").is_file()
         for kind, files in CONFIG_SETS.items() if all((bundle / "configs" / f).is_file() for f in files)]


@pytest.fixture(scope="module")
def datalists(tmp_path_factory) -> dict[str, Path]:
    """``good``; ``string_y``: one entry of every split has y = "1"; ``no_masks``: no entry names its mask."""
    good = write_synthetic_datalist(tmp_path_factory.mktemp("data"), SyntheticParams(m=6, n=12, a=3, b=4, n_val=6,
                                                                                      n_test=6, mu_y=0.5), fmt="png")
    content = json.loads(good.read_text())
    paths = {"good": good}
    for name, change in (("string_y", lambda e, i: e.update(y="1") if i == 0 else None),
                         ("no_masks", lambda e, i: e.pop("label"))):
        changed = json.loads(json.dumps(content))
        for split in ("training", "validation", "test"):
            for i, entry in enumerate(changed[split]):
                change(entry, i)
        paths[name] = good.parent / f"{name}.json"
        paths[name].write_text(json.dumps(changed))
    return paths


def _validation_item(bundle: str, kind: str, datalist: Path | None) -> tuple[ConfigParser, str, list[str]]:
    parser = ConfigParser()
    parser.read_config([str(BUNDLES / bundle / "configs" / f) for f in CONFIG_SETS[kind]])
    parser["datalist"] = None if datalist is None else str(datalist)
    items = parser["initialize"]
    index = next(i for i, item in enumerate(items) if "validate_datalist" in str(item))
    return parser, f"initialize#{index}", items[:index]


@pytest.mark.parametrize("bundle, kind", CASES)
def test_initialize_validates_the_datalist_first(bundle, kind, datalists):
    parser, item, before = _validation_item(bundle, kind, datalists["string_y"])
    # only the error reporting comes before it: nothing that builds data, networks or process groups
    assert all("exit_on_input_error" in str(b) for b in before), before
    with pytest.raises(Exception) as info:
        parser.get_parsed_content(item)
    error = root_cause(info.value)
    assert isinstance(error, DatalistError)
    read = {"inference": {"test"}, "evaluate": {"test"}}.get(kind, {"training", "validation"})
    assert {p.split for p in error.problems} == read
    assert all(p.index == 0 and p.field == "y" for p in error.problems)
    for name, expected in (("good", True), ("no_masks", bundle in IMAGE_LABEL_BUNDLES or kind == "inference")):
        parser, item, _ = _validation_item(bundle, kind, datalists[name])
        if expected:
            assert parser.get_parsed_content(item).sizes
        else:
            with pytest.raises(Exception) as info:
                parser.get_parsed_content(item)
            assert "field 'label': missing" in str(root_cause(info.value))
    # the built-in synthetic data needs no check
    parser, item, _ = _validation_item(bundle, kind, None)
    assert parser.get_parsed_content(item) is None


def test_every_bundle_config_is_covered():
    assert len(CASES) == 23  # six bundles x train, evaluate, inference, and multi_gpu for all but seg_ssl
