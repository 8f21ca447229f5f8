"""Every config chain of every level and method (spatialspec.registry) checks its datalist first thing in
``initialize`` (spatialspec.data.validate_datalist): the splits it reads, with the abnormal mask required by the
pixel-wise models only. Configs are parsed and the one expression evaluated; nothing is trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from spatialspec import registry
from spatialspec.data import DatalistError, SyntheticParams, write_synthetic_datalist
from spatialspec.errors import root_cause

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
# config chains as they are run: train, DDP train, evaluation and inference (both merged after the train chain)
CONFIG_SETS = {"train": {}, "multi_gpu": {"multi_gpu": True}, "evaluate": {"kind": "evaluate"},
               "inference": {"kind": "inference"}}
CASES = [(name, kind) for name in registry.METHODS for kind in CONFIG_SETS]


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


def _validation_item(name: str, kind: str, datalist: Path | None) -> tuple[ConfigParser, str, list[str]]:
    parser = ConfigParser()
    parser.read_config([str(f) for f in registry.config_files(name, bundles_dir=BUNDLES, **CONFIG_SETS[kind])])
    parser["datalist"] = None if datalist is None else str(datalist)
    items = parser["initialize"]
    index = next(i for i, item in enumerate(items) if "validate_datalist" in str(item))
    return parser, f"initialize#{index}", items[:index]


@pytest.mark.parametrize("name, kind", CASES)
def test_initialize_validates_the_datalist_first(name, kind, datalists):
    parser, item, before = _validation_item(name, kind, datalists["string_y"])
    # only the error reporting comes before it: nothing that builds data, networks or process groups
    assert all("exit_on_input_error" in str(b) for b in before), before
    with pytest.raises(Exception) as info:
        parser.get_parsed_content(item)
    error = root_cause(info.value)
    assert isinstance(error, DatalistError)
    read = {"inference": {"test"}, "evaluate": {"test"}}.get(kind, {"training", "validation"})
    assert {p.split for p in error.problems} == read
    assert all(p.index == 0 and p.field == "y" for p in error.problems)
    image_labels_only = registry.method(name).image_labels_only
    for datalist, expected in (("good", True), ("no_masks", image_labels_only or kind == "inference")):
        parser, item, _ = _validation_item(name, kind, datalists[datalist])
        if expected:
            assert parser.get_parsed_content(item).sizes
        else:
            with pytest.raises(Exception) as info:
                parser.get_parsed_content(item)
            assert "field 'label': missing" in str(root_cause(info.value))
    # the built-in synthetic data needs no check
    parser, item, _ = _validation_item(name, kind, None)
    assert parser.get_parsed_content(item) is None


def test_every_config_chain_is_covered():
    # thirteen levels and methods x train, DDP train, evaluate, inference: every method has every chain by construction
    assert len(CASES) == 52 and len(registry.METHODS) == 13
