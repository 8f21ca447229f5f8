"""spatialspec.handlers.RobustAUROC inside a real monai.engines.SupervisedEvaluator, and attach_run_params.

The network is a fixed function of its input: it returns the logits ``[0, x]`` per pixel, so after a softmax over
the channels the abnormal-class probability map is ``sigmoid(x)`` and the ``mean`` image score is
``sigmoid(image).mean()``, computed here independently of the library's transforms.
"""

from __future__ import annotations

import math
import types
import warnings

import numpy as np
import pytest
import torch
from ignite.metrics import Average
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from monai.handlers import MLFlowHandler, StatsHandler
from monai.transforms import Activationsd, Compose

from spatialspec.handlers import RobustAUROC, attach_run_params, flatten_params
from spatialspec.metrics import PAIR_NAMES, subgroup_aurocs
from spatialspec.transforms import ImageScored

SIDE = 4
BATCH = 4  # 12 images -> 3 iterations: the handler must accumulate across iterations

# (y, s) per image; every subgroup (0,0), (0,1), (1,0), (1,1) is present
YS = [(1, 1), (1, 0), (0, 1), (0, 0), (1, 0), (0, 1), (1, 1), (0, 0), (1, 0), (0, 1), (1, 1), (0, 0)]
# per-image intensity offset: chosen so that the figures differ from one another (ties, inversions, ...)
LEVELS = [2.0, -0.5, 0.7, -1.0, 1.2, -0.2, 0.1, -2.0, 0.3, 1.5, -0.8, 0.0]

ALL_NAMES = {"val_robust_auroc", "val_overall_auroc", "val_worst_pair_auroc", *(f"val_{p}" for p in PAIR_NAMES)}
# MONAI attaches additional_metrics only next to a key metric (the bundles use val_loss): a neutral one here
KEY = "val_mean_score"


class FixedLogits(torch.nn.Module):
    """Logits [0, x] per pixel: softmax over channels gives the abnormal probability sigmoid(x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x), x], dim=1)


class NegatedLogits(FixedLogits):
    """Logits [0, -x]: every score order of FixedLogits reversed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(-x)


def _image(level: float, index: int) -> torch.Tensor:
    # a per-image level plus a fixed spatial pattern, so that the mean over the map is not the map's single value
    pattern = torch.linspace(-1.0, 1.0, SIDE * SIDE).reshape(1, SIDE, SIDE) * (0.1 * (index % 3 + 1))
    return (level + pattern).float()


def make_data(ys=YS, levels=LEVELS, drop_key: str | None = None) -> list[dict]:
    items = []
    for i, ((y, s), level) in enumerate(zip(ys, levels)):
        item = {"image": _image(level, i), "label": torch.full((1, SIDE, SIDE), float(y)), "y": y, "s": s}
        if drop_key is not None:
            item.pop(drop_key)
        items.append(item)
    return items


def expected_scores(data: list[dict]) -> np.ndarray:
    return np.array([torch.sigmoid(item["image"]).mean().item() for item in data])


def make_evaluator(data: list[dict], decollate: bool, handlers: dict) -> SupervisedEvaluator:
    if decollate:
        post = Compose([Activationsd(keys="pred", softmax=True), ImageScored(keys="pred", output_keys="score")])
    else:
        post = Compose([Activationsd(keys="pred", softmax=True, dim=1),
                        ImageScored(keys="pred", output_keys="score", batched=True)])
    loader = DataLoader(Dataset(data), batch_size=BATCH, shuffle=False, num_workers=0)
    key = {KEY: Average(output_transform=lambda output: float(np.mean([float(i["pred"][1].mean()) if decollate
                                                                        else float(i["pred"][:, 1].mean())
                                                                        for i in _items(output)])))}
    return SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=loader, network=FixedLogits(),
                               postprocessing=post, key_val_metric=key, additional_metrics=handlers,
                               decollate=decollate)


def _items(data) -> list[dict]:
    return list(data) if isinstance(data, list) else [data]


def _assert_figures(metrics: dict, expected: dict, prefix: str = "val_", robust_name: str = "val_robust_auroc"):
    for figure, value in expected.items():
        name = robust_name if figure == "robust_auroc" else prefix + figure
        assert name in metrics, f"{name} missing from {sorted(metrics)}"
        assert metrics[name] == pytest.approx(value, nan_ok=True, abs=1e-12), name


@pytest.mark.parametrize("decollate", [True, False], ids=["decollate", "batched"])
def test_handler_in_supervised_evaluator(decollate):
    data = make_data()
    engine = make_evaluator(data, decollate, {"val_robust_auroc": RobustAUROC(score_key="score")})
    seen_outputs, seen_batches = [], []
    engine.add_event_handler("ITERATION_COMPLETED",
                             lambda e: (seen_outputs.append(e.state.output), seen_batches.append(e.state.batch)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # every subgroup is present: no NaN warning
        engine.run()

    expected = subgroup_aurocs(expected_scores(data), [y for y, _ in YS], [s for _, s in YS])
    assert all(not math.isnan(v) for v in expected.values())
    # the test data is informative: the figures are not all equal
    assert len({round(v, 9) for v in expected.values()}) > 2
    metrics = engine.state.metrics
    assert set(metrics) == ALL_NAMES | {KEY}
    _assert_figures(metrics, expected)

    # per-image buffers in metric_details: the scores are exactly the known ones, in data order
    score_buf, y_buf, s_buf = engine.state.metric_details["val_robust_auroc"]
    np.testing.assert_allclose(score_buf.numpy(), expected_scores(data), rtol=1e-6)
    assert y_buf.tolist() == [y for y, _ in YS] and s_buf.tolist() == [s for _, s in YS]

    # y and s stay in the batch: the evaluator's output holds image/label/pred/score only
    assert len(seen_outputs) == math.ceil(len(data) / BATCH)
    for output, batch in zip(seen_outputs, seen_batches):
        assert isinstance(output, list) == decollate
        for item in _items(output):
            assert "score" in item and "pred" in item
            assert "y" not in item and "s" not in item, sorted(item)
        for item in _items(batch):
            assert "y" in item and "s" in item


def test_second_run_starts_from_scratch():
    """The handler resets on every run (the ValidationHandler re-runs the evaluator each epoch)."""
    data = make_data()
    engine = make_evaluator(data, False, {"val_robust_auroc": RobustAUROC()})
    engine.run()
    first = dict(engine.state.metrics)
    # flip the network's ranking: x -> -x reverses every score order, so each AUROC a becomes 1 - a
    engine.network = NegatedLogits()
    engine.run()
    for name in ALL_NAMES - {"val_worst_pair_auroc"}:
        assert engine.state.metrics[name] == pytest.approx(1.0 - first[name], abs=1e-12), name
    assert len(engine.state.metric_details["val_robust_auroc"][0]) == len(data)


def test_other_name_gets_suffixes():
    data = make_data()
    engine = make_evaluator(data, True, {"rob": RobustAUROC()})
    engine.run()
    expected = subgroup_aurocs(expected_scores(data), [y for y, _ in YS], [s for _, s in YS])
    metrics = engine.state.metrics
    assert set(metrics) == {KEY, "rob", "rob_overall_auroc", "rob_worst_pair_auroc", *(f"rob_{p}" for p in PAIR_NAMES)}
    _assert_figures(metrics, expected, prefix="rob_", robust_name="rob")
    assert "rob_robust_auroc" not in metrics


def test_key_overall_auroc_is_the_key_metric():
    """key="overall_auroc": the overall AUROC is stored under the attached name and drives the evaluator's best
    metric (checkpointing); the robust AUROC and the rest keep their usual names."""
    from sklearn.metrics import roc_auc_score

    data = make_data()
    loader = DataLoader(Dataset(data), batch_size=BATCH, shuffle=False, num_workers=0)
    post = Compose([Activationsd(keys="pred", softmax=True, dim=1),
                    ImageScored(keys="pred", output_keys="score", batched=True)])
    engine = SupervisedEvaluator(device=torch.device("cpu"), val_data_loader=loader, network=FixedLogits(),
                                 postprocessing=post, decollate=False,
                                 key_val_metric={"val_overall_auroc": RobustAUROC(key="overall_auroc")})
    engine.run()
    y = [y for y, _ in YS]
    scores = expected_scores(data)
    overall = roc_auc_score(y, scores)
    robust_subset = [i for i, (yy, ss) in enumerate(YS) if yy != ss]
    robust = roc_auc_score([y[i] for i in robust_subset], scores[robust_subset])
    assert overall != pytest.approx(robust)  # the data tells the two figures apart
    metrics = engine.state.metrics
    assert set(metrics) == ALL_NAMES
    assert metrics["val_overall_auroc"] == pytest.approx(overall, abs=1e-12)
    assert metrics["val_robust_auroc"] == pytest.approx(robust, abs=1e-12)
    assert engine.state.key_metric_name == "val_overall_auroc"
    assert engine.state.best_metric == pytest.approx(overall, abs=1e-12)


def test_key_other_name_and_bad_key():
    data = make_data()
    engine = make_evaluator(data, True, {"auc": RobustAUROC(key="worst_pair_auroc")})
    engine.run()
    expected = subgroup_aurocs(expected_scores(data), [y for y, _ in YS], [s for _, s in YS])
    metrics = engine.state.metrics
    assert metrics["auc"] == pytest.approx(expected["worst_pair_auroc"], abs=1e-12)
    assert metrics["auc_robust_auroc"] == pytest.approx(expected["robust_auroc"], abs=1e-12)
    assert "auc_worst_pair_auroc" not in metrics
    with pytest.raises(ValueError, match="key must be one of .*'dice'"):
        RobustAUROC(key="dice")


def test_two_handlers_side_by_side():
    """A validation and a test-style handler in one engine keep their figures apart."""
    data = make_data()
    engine = make_evaluator(data, False, {"val_robust_auroc": RobustAUROC(), "test_robust_auroc": RobustAUROC()})
    engine.run()
    for prefix in ("val_", "test_"):
        assert {f"{prefix}robust_auroc", f"{prefix}overall_auroc"} <= set(engine.state.metrics)
    assert engine.state.metrics["val_robust_auroc"] == engine.state.metrics["test_robust_auroc"]


@pytest.mark.parametrize("decollate", [True, False], ids=["decollate", "batched"])
def test_missing_subgroup_gives_nan_and_warning(decollate):
    # no (y=0, s=1) image: the robust AUROC and both pairs with y0s1 are undefined
    keep = [i for i, ys in enumerate(YS) if ys != (0, 1)]
    ys, levels = [YS[i] for i in keep], [LEVELS[i] for i in keep]
    data = make_data(ys, levels)
    engine = make_evaluator(data, decollate, {"val_robust_auroc": RobustAUROC()})
    with pytest.warns(RuntimeWarning, match="undefined") as record:
        engine.run()
    messages = " | ".join(str(w.message) for w in record)
    assert "robust" in messages and "y=0,s=1" in messages

    metrics = engine.state.metrics
    assert set(metrics) == ALL_NAMES | {KEY}
    for name in ("val_robust_auroc", "val_auroc_y0s1_y1s0", "val_auroc_y0s1_y1s1"):
        assert math.isnan(metrics[name]), (name, metrics[name])
    for name in ("val_overall_auroc", "val_auroc_y0s0_y1s0", "val_auroc_y0s0_y1s1", "val_worst_pair_auroc"):
        assert not math.isnan(metrics[name]), (name, metrics[name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = subgroup_aurocs(expected_scores(data), [y for y, _ in ys], [s for _, s in ys])
    _assert_figures(metrics, expected)


@pytest.mark.parametrize("decollate", [True, False], ids=["decollate", "batched"])
def test_missing_spurious_key_raises_keyerror(decollate):
    data = make_data(drop_key="s")
    engine = make_evaluator(data, decollate, {"val_robust_auroc": RobustAUROC()})
    with pytest.raises(KeyError, match="'s' is missing from engine.state.batch"):
        engine.run()


def test_custom_keys_and_missing_custom_key():
    data = make_data()
    for item in data:
        item["abnormal"], item["shortcut"] = item.pop("y"), item.pop("s")
    engine = make_evaluator(data, True, {"val_robust_auroc": RobustAUROC(label_key="abnormal",
                                                                         spurious_key="shortcut")})
    engine.run()
    expected = subgroup_aurocs(expected_scores(data), [y for y, _ in YS], [s for _, s in YS])
    _assert_figures(engine.state.metrics, expected)

    engine = make_evaluator(data, True, {"val_robust_auroc": RobustAUROC(spurious_key="spurious_flag",
                                                                         label_key="abnormal")})
    with pytest.raises(KeyError, match="spurious_flag"):
        engine.run()


def test_missing_score_key_raises_keyerror():
    engine = make_evaluator(make_data(), True, {"val_robust_auroc": RobustAUROC(score_key="image_score")})
    with pytest.raises(KeyError, match="'image_score' is missing from engine.state.output"):
        engine.run()


# ---------------------------------------------------------------------------------------------------------------
# attach_run_params
# ---------------------------------------------------------------------------------------------------------------

PARAMS = {"bundle": "segmentation", "level": "bbox", "seed": 3, "datalist": None,
          "synthetic": {"m": 20, "n": 16, "inner": {"deep": 1.5}}}
FLAT = {"bundle": "segmentation", "level": "bbox", "seed": 3, "datalist": "none", "synthetic.m": 20,
        "synthetic.n": 16, "synthetic.inner.deep": 1.5}


def test_flatten_params():
    assert flatten_params(PARAMS) == FLAT
    assert flatten_params({}) == {}
    assert flatten_params({"a": {"b": None}}, prefix="run.") == {"run.a.b": "none"}


@pytest.fixture
def mlflow_handlers(tmp_path, monkeypatch):
    # MLFlowHandler gives MLFLOW_TRACKING_URI priority: keep the test's own sqlite store
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = "sqlite:///" + str(tmp_path.resolve()) + "/mlruns.db"
    return (MLFlowHandler(tracking_uri=uri, experiment_param={"existing": "kept", "seed": 0}),
            MLFlowHandler(tracking_uri=uri))


def test_attach_run_params_sets_mlflow_handlers_only(mlflow_handlers):
    with_params, without_params = mlflow_handlers
    stats = StatsHandler()
    lookalike = types.SimpleNamespace(experiment_param=None)  # has the attribute, is not an MLFlowHandler
    handlers = [stats, with_params, lookalike, without_params]

    touched = attach_run_params(handlers, PARAMS)

    assert touched == [with_params, without_params]
    assert with_params.experiment_param == {"existing": "kept", **FLAT}  # run params win over older keys (seed)
    assert with_params.experiment_param["seed"] == 3
    assert without_params.experiment_param == FLAT
    assert "synthetic.m" in without_params.experiment_param and "synthetic" not in without_params.experiment_param
    assert lookalike.experiment_param is None
    assert not hasattr(stats, "experiment_param")
    assert PARAMS["synthetic"] == {"m": 20, "n": 16, "inner": {"deep": 1.5}}  # input not mutated


def test_attach_run_params_without_tracking_is_a_no_op():
    handlers = [StatsHandler(), StatsHandler()]
    assert attach_run_params(handlers, PARAMS) == []
    assert attach_run_params([], PARAMS) == []


def test_bootstrap_bounds_in_metrics_and_mlflow(tmp_path, monkeypatch):
    """bootstrap=N: every figure's 95% bounds are stored next to it (``<name>_ci_low`` / ``_ci_high``) and an
    MLFlowHandler logging the evaluator's metrics logs them; without it there are none (the default)."""
    from mlflow.tracking import MlflowClient

    from spatialspec.metrics import bootstrap_intervals

    data = make_data()
    engine = make_evaluator(data, False, {"val_robust_auroc": RobustAUROC(bootstrap=200, bootstrap_seed=4)})
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = "sqlite:///" + str(tmp_path.resolve()) + "/mlruns.db"
    MLFlowHandler(tracking_uri=uri, experiment_name="ci", run_name="eval", iteration_log=False,
                  close_on_complete=True).attach(engine)
    engine.run()

    scores, y, s = expected_scores(data), [y for y, _ in YS], [s for _, s in YS]
    intervals = bootstrap_intervals(scores.astype(np.float32), y, s, n_resamples=200, seed=4)
    metrics = engine.state.metrics
    assert set(metrics) == ALL_NAMES | {KEY} | {f"{n}_ci_{b}" for n in ALL_NAMES for b in ("low", "high")}
    for figure, (low, high) in intervals.items():
        name = "val_" + figure
        assert (metrics[f"{name}_ci_low"], metrics[f"{name}_ci_high"]) == pytest.approx((low, high), abs=1e-12)
        assert low <= metrics[name] <= high
    assert metrics["val_robust_auroc_ci_low"] < metrics["val_robust_auroc_ci_high"]

    # a client of this store only: mlflow.set_tracking_uri would leave the URI (and MLFLOW_TRACKING_URI) to later tests
    client = MlflowClient(uri)
    logged = client.search_runs([client.get_experiment_by_name("ci").experiment_id])[0].data.metrics
    assert logged["val_robust_auroc_ci_low"] == pytest.approx(metrics["val_robust_auroc_ci_low"])
    assert logged["val_worst_pair_auroc_ci_high"] == pytest.approx(metrics["val_worst_pair_auroc_ci_high"])
