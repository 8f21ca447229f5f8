"""Image-level scores (spatialspec.transforms.scores): mean / max / topk:K readouts of a probability map."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch

from spatialspec.transforms import ImageScore, ImageScoreD, ImageScored, ImageScoreDict, image_score, parse_score

# a 2 x 2 x 3 softmax output: channel 0 background, channel 1 abnormal
FG = [[0.1, 0.9, 0.2],
      [0.4, 0.0, 0.6]]
PROB = torch.tensor([[[1 - v for v in row] for row in FG], FG], dtype=torch.float32)
# hand computed: mean = 2.2 / 6; max = 0.9; top-2 = (0.9 + 0.6) / 2; top-3 = (0.9 + 0.6 + 0.4) / 3
EXPECTED = {"mean": 2.2 / 6, "max": 0.9, "topk:1": 0.9, "topk:2": 0.75, "topk:3": 1.9 / 3, "topk:6": 2.2 / 6,
            "topk:100": 2.2 / 6, "TopK:2": 0.75, " MAX ": 0.9}


@pytest.mark.parametrize(("method", "expected"), list(EXPECTED.items()))
def test_image_score_on_probability_map(method, expected):
    out = image_score(PROB, method)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (1,)
    assert out.item() == pytest.approx(expected, abs=1e-6)


def test_image_score_default_is_mean():
    assert image_score(PROB).item() == pytest.approx(2.2 / 6, abs=1e-6)


def test_image_score_channel():
    # channel 0 of PROB is 1 - FG: max is 1.0, mean is 1 - 2.2/6
    assert image_score(PROB, "max", channel=0).item() == pytest.approx(1.0)
    assert image_score(PROB, "mean", channel=0).item() == pytest.approx(1 - 2.2 / 6, abs=1e-6)


def test_image_score_numpy_input():
    out = image_score(PROB.numpy().astype(np.float64), "topk:2")
    assert isinstance(out, torch.Tensor) and out.shape == (1,)
    assert out.item() == pytest.approx(0.75)


@pytest.mark.parametrize("method", ["mean", "max", "topk:3"])
def test_classifier_output_returns_prob_1(method):
    prob = torch.tensor([0.3, 0.7])
    out = image_score(prob, method)
    assert out.shape == (1,)
    assert out.item() == pytest.approx(0.7)
    three = torch.tensor([0.1, 0.25, 0.65])
    assert image_score(three, method).item() == pytest.approx(0.25)
    assert image_score(three, method, channel=2).item() == pytest.approx(0.65)


def test_scalar_input():
    out = image_score(torch.tensor(0.42))
    assert out.shape == (1,) and out.item() == pytest.approx(0.42)


@pytest.mark.parametrize(("text", "parsed"), [("mean", ("mean", None)), ("max", ("max", None)),
                                              ("topk:64", ("topk", 64)), ("TOPK:1", ("topk", 1)),
                                              (" mean ", ("mean", None))])
def test_parse_score(text, parsed):
    assert parse_score(text) == parsed


@pytest.mark.parametrize("text", ["median", "topk", "topk:", "topk:0", "topk:-3", "topk:x", "topk:2.5", "max:3",
                                  "mean:1", "", "sum"])
def test_parse_score_errors_name_the_score(text):
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_score(text)


def test_image_score_rejects_bad_method():
    with pytest.raises(ValueError, match="median"):
        image_score(PROB, "median")
    with pytest.raises(ValueError, match="topk:0"):
        ImageScore("topk:0")


def test_image_score_transform():
    assert ImageScore("max")(PROB).item() == pytest.approx(0.9)
    assert ImageScore("mean", channel=0)(PROB).item() == pytest.approx(1 - 2.2 / 6, abs=1e-6)


@pytest.mark.parametrize("cls", [ImageScored, ImageScoreD, ImageScoreDict])
def test_image_scored_writes_output_keys(cls):
    data = {"pred": PROB, "y": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the current name warns about nothing
        out = cls(keys="pred", method="topk:2", output_keys="score")(data)
    assert out["score"].item() == pytest.approx(0.75)
    assert out["pred"] is PROB and out["y"] == 1
    assert "score" not in data
    out2 = cls(keys="pred", method="max", output_keys=["image_score"])(data)
    assert out2["image_score"].item() == pytest.approx(0.9)
    assert "score" not in out2


def test_image_scored_deprecated_output_key_still_works():
    """A config written with the former ``output_key`` still runs, with a FutureWarning naming the new argument."""
    with pytest.warns(FutureWarning, match="`output_key`.*deprecated.*`output_keys`"):
        scorer = ImageScored(keys="pred", method="max", output_key="image_score")
    out = scorer({"pred": PROB})
    assert out["image_score"].item() == pytest.approx(0.9)
    assert "score" not in out
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="disagree"):
        ImageScored(keys="pred", output_keys="score", output_key="image_score")


def test_image_scored_deprecated_output_key_from_a_bundle_config():
    """What a bundle YAML with ``output_key: score`` builds through MONAI's ConfigParser."""
    from monai.bundle import ConfigParser

    for name in ("output_key", "output_keys"):
        parser = ConfigParser({"post": {"_target_": "spatialspec.transforms.ImageScored", "keys": "pred",
                                        name: "image_score"}})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scorer = parser.get_parsed_content("post")
        assert scorer({"pred": PROB})["image_score"].item() == pytest.approx(2.2 / 6, abs=1e-6)
        deprecated = [w for w in caught if issubclass(w.category, FutureWarning) and "output_key`" in str(w.message)]
        assert len(deprecated) == (name == "output_key")


def test_image_scored_default_output_keys_and_one_key():
    out = ImageScored(keys="pred")({"pred": PROB})
    assert out["score"].item() == pytest.approx(2.2 / 6, abs=1e-6)
    with pytest.raises(ValueError, match="one"):
        ImageScored(keys=["a", "b"])
    with pytest.raises(ValueError, match="output_keys must name one key"):
        ImageScored(keys="pred", output_keys=["a", "b"])
