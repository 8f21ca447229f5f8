"""A study's bundle workflows share MONAI's component table (spatialspec.study.locator, issue 17)."""

from __future__ import annotations

import monai
from monai.bundle.config_item import ComponentLocator

from spatialspec.study import StudyConfig, study_runs
from spatialspec.study.locator import SharedComponentLocator
from spatialspec.study.runner import train_overrides
from spatialspec.study.workflow import build_workflow


def test_workflows_share_one_component_table(tmp_path, monkeypatch):
    scans = []
    original = ComponentLocator._find_classes_or_functions
    monkeypatch.setattr(ComponentLocator, "_find_classes_or_functions",
                        lambda self, names: scans.append(len(names)) or original(self, names))
    monkeypatch.setattr(SharedComponentLocator, "_shared", None)
    config = StudyConfig(levels=["seg"], seeds=[0], epochs=1, out_dir=str(tmp_path), tracking_uri="none")
    spec = study_runs(config)[0]
    digests = []
    for _ in range(3):
        workflow = build_workflow(spec.config_files("train"), spec.meta_file(), None, **train_overrides(config, spec))
        assert isinstance(workflow.parser.locator, SharedComponentLocator)
        digests.append(workflow.parser.get_parsed_content("fingerprint")["digest"])
    assert len(scans) == 1 and len(set(digests)) == 1  # one scan of MONAI's modules, the same run
    table = SharedComponentLocator()
    assert table.get_component_module_name("UNet") == ComponentLocator().get_component_module_name("UNet")


def test_a_new_module_set_is_scanned_again(monkeypatch):
    monkeypatch.setattr(SharedComponentLocator, "_shared", None)
    locator = SharedComponentLocator()
    names = locator._find_module_names()
    first = locator._find_classes_or_functions(names)
    assert SharedComponentLocator()._find_classes_or_functions(names) is first
    assert SharedComponentLocator()._find_classes_or_functions(names[:-1]) is not first
    assert monai.__name__ in names
