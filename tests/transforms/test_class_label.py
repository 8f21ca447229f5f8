"""LabelByClass(d): the ISIC supervision ``mask * (1 + y)`` (background 0, benign lesion 1, melanoma lesion 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spatialspec.transforms import LabelByClass, LabelByClassd, LabelByClassDict

MASK = [[0, 1, 1], [0, 0, 1]]


@pytest.mark.parametrize("y, expected", [(0, [[0, 1, 1], [0, 0, 1]]), (1, [[0, 2, 2], [0, 0, 2]])])
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_array_form_keeps_type_and_dtype(kind, y, expected):
    mask = np.array(MASK, dtype=np.uint8) if kind == "numpy" else torch.tensor(MASK, dtype=torch.uint8)
    out = LabelByClass()(mask, y)
    assert type(out) is type(mask) and out.dtype == mask.dtype
    assert np.asarray(out).tolist() == expected


@pytest.mark.parametrize("y", [1, 1.0, np.int64(1), torch.tensor(1)])
def test_class_may_be_any_integral_number(y):
    assert LabelByClass()(torch.tensor(MASK, dtype=torch.uint8), y).max().item() == 2


@pytest.mark.parametrize("y", [-1, 0.5, True, "1", None])
def test_other_classes_are_refused(y):
    with pytest.raises(ValueError, match="non-negative integer"):
        LabelByClass()(np.array(MASK), y)


def test_dict_form_matches_the_config_lambda_it_replaces():
    lesion = torch.tensor([[MASK]], dtype=torch.uint8)
    for y in (0, 1):
        data = {"label": lesion, "y": y, "image": torch.zeros(1, 2, 3)}
        expected = (lambda d: {**d, "label": d["label"] * (1 + int(d["y"]))})(data)  # the ISIC configs' lambda
        out = LabelByClassd(keys="label")(data)
        assert torch.equal(out["label"], expected["label"]) and out["label"].dtype == torch.uint8
        assert out["image"] is data["image"] and data["label"] is lesion  # the input dict is left as it was
    assert LabelByClassDict is LabelByClassd
    assert LabelByClassd(keys="mask", allow_missing_keys=True)({"y": 1}) == {"y": 1}
