"""spatialspec.study.config_cache (issue 17): a study's bundle config chains are read once per process, with MONAI's
own merge, and read again when a file changes."""

from __future__ import annotations

import json
import os

import pytest
from monai.bundle import ConfigParser

from spatialspec import registry
from spatialspec.study.config_cache import clear_config_cache, merged_config, merged_config_file
from spatialspec.study.workflow import build_workflow


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_config_cache()
    yield
    clear_config_cache()


@pytest.mark.parametrize("name", ["seg", "jtt", "seg-ssl", "rrr"])
def test_a_chain_merges_as_monai_merges_it(name):
    files = registry.config_files(name, "train")
    expected = ConfigParser.load_config_files([str(f) for f in files])
    assert merged_config(files) == expected
    (single,) = merged_config_file(files)
    assert json.loads(open(single).read()) == expected
    assert merged_config_file(files) == [single]  # read once: the same file again
    copy = merged_config(files)
    copy["edited"] = True  # the caller's copy: the cache is unchanged
    assert "edited" not in merged_config(files)


def test_a_workflow_from_the_cache_equals_one_from_the_files(tmp_path):
    from monai.bundle import ConfigWorkflow

    files = registry.config_files("seg", "evaluate")
    meta = registry.meta_file("seg")
    overrides = {"output_dir": str(tmp_path), "epochs": 1}
    cached = build_workflow(files, meta, None, **overrides)
    direct = ConfigWorkflow(config_file=[str(f) for f in files], meta_file=str(meta), logging_file=False,
                            workflow_type=None, **overrides)
    assert cached.parser.get() == direct.parser.get()


def test_an_edited_config_is_read_again_and_dates_fall_back_to_the_files(tmp_path):
    base, overlay = tmp_path / "base.yaml", tmp_path / "overlay.yaml"
    base.write_text("a: 1\nlist: [1, 2]\n")
    overlay.write_text("+list: [3]\nb: x\n")
    assert merged_config([base, overlay]) == {"a": 1, "list": [1, 2, 3], "b": "x"}
    overlay.write_text("+list: [4, 5]\nb: y\n")
    os.utime(overlay, ns=(1, 10**18))  # a new modification time even on a coarse clock
    assert merged_config([base, overlay]) == {"a": 1, "list": [1, 2, 4, 5], "b": "y"}
    dated = tmp_path / "dated.yaml"
    dated.write_text("when: 2026-11-30\n")  # YAML reads a date: no JSON file, the files themselves
    assert merged_config_file([base, dated]) == [str(base), str(dated)]
    with pytest.raises(FileNotFoundError):
        merged_config([tmp_path / "missing.yaml"])
