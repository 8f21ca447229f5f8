"""``import spatialspec`` is cheap and lazy (PEP 562) yet serves the bundle configs as before: every
``spatialspec.<subpackage>.<name>`` they write resolves after ``$import spatialspec``, and the FlexibleUNet backbone
``se_resnext50_32x4d`` is registered in whichever order spatialspec and MONAI are imported (issue 17, part 1)."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import spatialspec

REPO = Path(__file__).resolve().parents[1]


def bundle_config_paths() -> list[str]:
    """Every dotted ``spatialspec.x.y`` the bundle configs write."""
    found = set()
    for config in sorted(REPO.glob("bundles/*/configs/*.yaml")):
        found.update(re.findall(r"\bspatialspec(?:\.[A-Za-z_][A-Za-z0-9_]*)+", config.read_text()))
    return sorted(found)


def test_all_dir_and_version():
    assert spatialspec.__version__ == "0.1.0"
    assert set(spatialspec.__all__) <= set(dir(spatialspec))
    for name in spatialspec.__all__:
        assert getattr(spatialspec, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        spatialspec.nope  # noqa: B018
    assert not hasattr(spatialspec, "__main__")  # a submodule, but importing it would run the command line


def test_bundle_configs_name_some_library_calls():
    paths = bundle_config_paths()
    assert "spatialspec.data.load_split" in paths and "spatialspec.handlers.RobustAUROC" in paths


_BUNDLE_PATHS = """
import json, sys
import spatialspec
assert not {"torch", "monai"} & set(sys.modules), "import spatialspec imported torch or MONAI"
from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE  # before any spatialspec subpackage is touched
registered = "se_resnext50_32x4d" in FLEXUNET_BACKBONE.register_dict
unresolved = []
for path in json.loads(sys.argv[1]):
    obj = spatialspec
    try:
        for part in path.split(".")[1:]:
            obj = getattr(obj, part)
    except AttributeError as e:
        unresolved.append(f"{path}: {e}")
print(json.dumps({"unresolved": unresolved, "registered": registered}))
"""

_MONAI_FIRST = """
import json
from monai.networks.nets import FlexibleUNet
from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE
assert "se_resnext50_32x4d" not in FLEXUNET_BACKBONE.register_dict
import spatialspec
print(json.dumps({"unresolved": [], "registered": "se_resnext50_32x4d" in FLEXUNET_BACKBONE.register_dict}))
"""


@pytest.mark.parametrize("order", ["spatialspec first", "monai first"])
def test_bundle_names_resolve_and_backbone_is_registered(order):
    """A fresh interpreter, as ``python -m monai.bundle run`` is: after ``import spatialspec`` every name the bundle
    configs write resolves, and FlexibleUNet knows ``se_resnext50_32x4d`` whether MONAI's networks were imported
    after spatialspec (by a config expression) or before it (``$import monai`` then ``$import spatialspec``)."""
    code = _BUNDLE_PATHS if order == "spatialspec first" else _MONAI_FIRST
    result = subprocess.run([sys.executable, "-c", code, json.dumps(bundle_config_paths())], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"unresolved": [], "registered": True}


def test_lazy_names_are_the_library_objects():
    """The names moved to torch-free modules, and those imported on first access, are the same objects under every
    name they had."""
    from spatialspec import metrics, score_names, selection_rules, supervision, tracking
    from spatialspec.handlers import selection
    from spatialspec.metrics import robust_auroc_metric

    robust_auroc = importlib.import_module("spatialspec.metrics.robust_auroc")  # the package's name is the function
    from spatialspec.tracking import handler
    from spatialspec.transforms import scores, specificity

    assert metrics.RobustAUROCMetric is robust_auroc.RobustAUROCMetric is robust_auroc_metric.RobustAUROCMetric
    assert "RobustAUROCMetric" in dir(metrics)
    assert tracking.BufferedMLFlowHandler is handler.BufferedMLFlowHandler
    assert "BufferedMLFlowHandler" in dir(tracking)
    assert scores.parse_score is score_names.parse_score and scores.SCORE_METHODS is score_names.SCORE_METHODS
    assert selection.STUDY_RULES is selection_rules.STUDY_RULES
    assert set(selection.STUDY_RULES) <= set(selection.SELECTION_RULES)
    for name in supervision.__all__:
        assert getattr(specificity, name) is getattr(supervision, name)
    with pytest.raises(AttributeError):
        metrics.nope  # noqa: B018


def test_supervision_reads_tensors_as_arrays():
    import numpy as np
    import torch

    from spatialspec.supervision import specificity_supervision

    mask = np.zeros((1, 8, 8))
    mask[0, 2:4, 3:5] = 1
    for level in ("binary", "patch:2", "dilate:4", "bbox", "seg"):
        expected = specificity_supervision(mask, level)
        assert np.array_equal(specificity_supervision(torch.from_numpy(mask), level), expected)


@pytest.mark.parametrize("name", ["mlruns.db", "with space/mlruns.db", "odd?#%/mlruns.db"])
def test_study_sqlite_uri_is_monais(tmp_path, name):
    """The study's default tracking URI, written without MONAI, is :func:`monai.utils.path_to_sqlite_uri`'s."""
    from monai.utils import path_to_sqlite_uri

    from spatialspec.study import StudyConfig

    out = tmp_path / Path(name).parent
    assert StudyConfig(out_dir=str(out)).resolved_tracking_uri() == path_to_sqlite_uri(out.resolve() / "mlruns.db")


#: old dotted path -> new one (issue 14, part 5: one placement rule); the old paths are bundle ``_target_`` names
MOVED = {
    "spatialspec.handlers.JTTErrorSetWriter": "spatialspec.robust.jtt.JTTErrorSetWriter",
    "spatialspec.handlers.GeorgeGroupsWriter": "spatialspec.robust.george.GeorgeGroupsWriter",
    "spatialspec.handlers.robust_stages.JTTErrorSetWriter": "spatialspec.robust.jtt.JTTErrorSetWriter",
    "spatialspec.handlers.robust_stages.GeorgeGroupsWriter": "spatialspec.robust.george.GeorgeGroupsWriter",
    "spatialspec.handlers.robust_stages.AttachToTrainer": "spatialspec.handlers.attach.AttachToTrainer",
    "spatialspec.losses.GroupDROObjective": "spatialspec.robust.george.GroupDROObjective",
    "spatialspec.losses.group_dro.GroupDROObjective": "spatialspec.robust.george.GroupDROObjective",
    "spatialspec.ssl.PixelSimilarityObjective": "spatialspec.spl.PixelSimilarityObjective",
    "spatialspec.ssl.labels_at": "spatialspec.spl.labels_at",
    "spatialspec.ssl.ImageSimilarityLoss": "spatialspec.losses.ImageSimilarityLoss",
    "spatialspec.ssl.FeatureMapHook": "spatialspec.networks.FeatureMapHook",
    "spatialspec.ssl.default_feature_layer": "spatialspec.networks.default_feature_layer",
    "spatialspec.ssl.features.FeatureMapHook": "spatialspec.networks.feature_map.FeatureMapHook",
    "spatialspec.ssl.objectives.PixelSimilarityObjective": "spatialspec.spl.PixelSimilarityObjective",
    "spatialspec.ssl.objectives.labels_at": "spatialspec.spl.labels_at",
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_moved_names_resolve_with_a_deprecation_warning(old):
    """Each old path is the new object, as MONAI's config parser locates a ``_target_`` (:func:`pydoc.locate`), and
    reading it warns once with a DeprecationWarning that names the new path."""
    from pydoc import locate

    new = MOVED[old]
    module, _, name = new.rpartition(".")
    target = getattr(importlib.import_module(module), name)
    with pytest.warns(DeprecationWarning, match=re.escape(f"use {new}")) as record:
        assert locate(old) is target
    assert len([w for w in record if issubclass(w.category, DeprecationWarning) and "spatialspec" in str(w.message)
                ]) == 1


def test_moved_names_are_not_new_names():
    """Only the moved names resolve: a misspelt one still fails as before, and the new homes do not warn."""
    import warnings

    from spatialspec import handlers, losses, ssl

    for package in (handlers, losses, ssl):
        with pytest.raises(AttributeError, match="no attribute 'JTTErrorSetWriterr'"):
            package.JTTErrorSetWriterr  # noqa: B018
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        from spatialspec.handlers import AttachToTrainer  # noqa: F401
        from spatialspec.networks import FeatureMapHook  # noqa: F401
        from spatialspec.robust.george import GeorgeGroupsWriter, GroupDROObjective  # noqa: F401
        from spatialspec.robust.jtt import JTTErrorSetWriter  # noqa: F401
        from spatialspec.spl import PixelSimilarityObjective  # noqa: F401
