"""Deep Feature Reweighting (Kirichenko et al. 2023; a binary-label baseline next to Saab et al. 2022, Table 1):
the balanced subsets, the fit against one built by hand with numpy and scikit-learn, the standardisation folded
into the last layer, and the handler that writes the DFR model from the ERM checkpoint (idempotent, resume-safe)."""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedTrainer
from monai.networks.nets import ResNet
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from spatialspec.errors import InputError
from spatialspec.robust.dfr import C_GRID, DeepFeatureReweighting, DFRLastLayerWriter, balanced_subset, fit_balanced


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(threads)


def _features(n_per_group=(30, 6, 8, 26), seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Groups y0s0, y0s1, y1s0, y1s1 of the given sizes; feature 0 carries y, feature 1 carries s (strongly), the
    other three are noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 0, 1, 1], n_per_group)
    s = np.repeat([0, 1, 0, 1], n_per_group)
    x = rng.normal(size=(y.size, 5))
    x[:, 0] += 1.5 * y
    x[:, 1] += 4.0 * s + 3.0
    return x, y, s


def _hand_lr(C: float, seed: int) -> LogisticRegression:
    """An L1 logistic regression with liblinear, built here (``penalty`` is deprecated from scikit-learn 1.8)."""
    if inspect.signature(LogisticRegression).parameters["penalty"].default == "deprecated":
        return LogisticRegression(C=C, l1_ratio=1.0, solver="liblinear", random_state=seed)
    return LogisticRegression(C=C, penalty="l1", solver="liblinear", random_state=seed)


def _hand_fit(x: np.ndarray, y: np.ndarray, s: np.ndarray, C: float, n_draws: int, seed: int
              ) -> tuple[np.ndarray, float]:
    """The balanced fit by hand: every draw takes min-group-size images of each group in order (one permutation each
    from one seeded generator), one sklearn fit per draw, coefficients averaged."""
    groups = 2 * y + s
    size = min(np.sum(groups == g) for g in range(4))
    rng = np.random.default_rng(seed)
    coefs, intercepts = [], []
    for _ in range(n_draws):
        idx = np.concatenate([rng.permutation(np.flatnonzero(groups == g))[:size] for g in range(4)])
        assert np.bincount(groups[idx], minlength=4).tolist() == [size] * 4
        model = _hand_lr(C, seed).fit(x[idx], y[idx])
        coefs.append(model.coef_[0])
        intercepts.append(model.intercept_[0])
    return np.mean(coefs, axis=0), float(np.mean(intercepts))


def test_balanced_subset_has_equal_group_counts_and_is_seeded():
    groups = np.repeat([0, 1, 2, 3], [7, 3, 5, 9])
    np.random.default_rng(0).shuffle(groups)
    first = balanced_subset(groups, np.random.default_rng(1))
    assert np.bincount(groups[first], minlength=4).tolist() == [3, 3, 3, 3]
    assert len(set(first.tolist())) == first.size == 12  # without replacement
    assert np.array_equal(first, balanced_subset(groups, np.random.default_rng(1)))
    others = [balanced_subset(groups, np.random.default_rng(seed)) for seed in range(2, 6)]
    assert any(not np.array_equal(np.sort(first), np.sort(o)) for o in others)
    # a group absent from the split: the present ones are balanced
    reduced = groups[groups != 1]
    subset = reduced[balanced_subset(reduced, np.random.default_rng(0))]
    assert np.bincount(subset, minlength=4).tolist() == [5, 0, 5, 5]


@pytest.mark.parametrize("C, n_draws, seed", [(0.3, 1, 0), (1.0, 4, 7)])
def test_fit_equals_a_hand_built_balanced_fit(C, n_draws, seed):
    x, y, s = _features()
    coef, intercept = fit_balanced(x, y, 2 * y + s, C, n_draws=n_draws, seed=seed)
    expected_coef, expected_intercept = _hand_fit(x, y, s, C, n_draws, seed)
    np.testing.assert_allclose(coef, expected_coef, rtol=0, atol=1e-12)
    assert intercept == pytest.approx(expected_intercept, abs=1e-12)


def test_refit_on_the_whole_split_with_the_chosen_C_and_the_core_feature_wins():
    x, y, s = _features()
    dfr = DeepFeatureReweighting(n_draws=3, seed=2).fit(x, y, s)
    assert list(dfr.scores_) == list(C_GRID) and dfr.C_ in C_GRID
    best = max(dfr.scores_.values())
    assert dfr.C_ == next(c for c, v in dfr.scores_.items() if v == best)  # the first best C of the grid
    assert all(0.0 <= v <= 1.0 for v in dfr.scores_.values())
    scaler = StandardScaler().fit(x)
    np.testing.assert_allclose(dfr.mean_, scaler.mean_)
    np.testing.assert_allclose(dfr.scale_, scaler.scale_)
    coef, intercept = _hand_fit(scaler.transform(x), y, s, dfr.C_, 3, 2)
    np.testing.assert_allclose(dfr.coef_, coef, rtol=0, atol=1e-12)
    assert dfr.intercept_ == pytest.approx(intercept, abs=1e-12)
    # on balanced groups the spurious feature predicts nothing: the core feature carries the weight
    assert dfr.coef_[0] > 0.5 and abs(dfr.coef_[1]) < 0.25 * dfr.coef_[0]
    record = dfr.record()
    assert record["subset_size_per_group"] == 6 and record["group_counts"] == {"y0s0": 30, "y0s1": 6, "y1s0": 8,
                                                                                "y1s1": 26}
    assert record["tuning_halves"] == {"fit": 35, "score": 35} and record["n_draws"] == 3
    robust = DeepFeatureReweighting(n_draws=2, metric="robust_auroc", seed=2).fit(x, y, s)
    assert all(0.0 <= v <= 1.0 for v in robust.scores_.values()) and robust.C_ in C_GRID


def test_folding_the_standardisation_into_the_layer_gives_the_same_logits():
    x, y, s = _features(seed=3)
    dfr = DeepFeatureReweighting(c_grid=[0.3], n_draws=2, seed=0).fit(x, y, s)
    weight, bias = dfr.linear_layer()
    logits = x @ weight.T + bias
    standardised = (x - x.mean(axis=0)) / x.std(axis=0)  # by hand: the split's mean and (population) std
    expected = standardised @ dfr.coef_ + dfr.intercept_
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(dfr.decision_function(x), expected, rtol=0, atol=1e-9)
    probability = torch.softmax(torch.as_tensor(logits), dim=1)[:, 1].numpy()
    np.testing.assert_allclose(probability, 1 / (1 + np.exp(-expected)), rtol=0, atol=1e-9)
    with pytest.raises(InputError, match="num_classes must be 2"):
        dfr.linear_layer(3)


@pytest.mark.parametrize("kwargs, name", [({"c_grid": []}, "dfr_c_grid"), ({"c_grid": [1.0, -0.1]}, "dfr_c_grid"),
                                          ({"n_draws": 0}, "dfr_n_draws"), ({"metric": "accuracy"}, "dfr_metric")])
def test_bad_settings_fail_clearly(kwargs, name):
    with pytest.raises(InputError, match=f"^{name} "):
        DeepFeatureReweighting(**kwargs)


def test_bad_data_fail_clearly():
    x, y, s = _features()
    with pytest.warns(UserWarning, match="y1s0, y1s1"), pytest.raises(InputError, match="one class only"):
        DeepFeatureReweighting(n_draws=1).fit(x, np.zeros_like(y), s)
    with pytest.raises(InputError, match="s must hold 0/1"):
        DeepFeatureReweighting(n_draws=1).fit(x, y, s * 2)
    keep = (2 * y + s) != 1
    with pytest.warns(UserWarning, match="no image of group\\(s\\) y0s1"):
        dfr = DeepFeatureReweighting(c_grid=[1.0], n_draws=1).fit(x[keep], y[keep], s[keep])
    assert dfr.record()["subset_size_per_group"] == 8


# ---- the handler -------------------------------------------------------------------------------------------------

SIDE = 16


def _network() -> ResNet:
    torch.manual_seed(0)
    return ResNet(block="basic", layers=[1, 1, 1, 1], block_inplanes=[4, 8, 8, 8], spatial_dims=2,
                  n_input_channels=1, num_classes=2)


def _items(n: int, seed: int) -> list[dict]:
    """Images with an abnormal bright square (y) and a spurious dark stripe (s); y and s cycle so every (y, s)
    group has n / 4 images."""
    gen = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        y, s = i % 2, (i // 2) % 2
        image = torch.randn(1, SIDE, SIDE, generator=gen)
        image[:, 4:8, 4:8] += 1.5 * y
        image[:, 12:, :] -= 3.0 * s
        items.append({"image": image, "label": y, "y": y, "s": s})
    return items


def _loader(items: list[dict]) -> DataLoader:
    return DataLoader(Dataset(items), batch_size=8, shuffle=False)


def _state(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _trained_erm(tmp_path, writer: DFRLastLayerWriter) -> SupervisedTrainer:
    """One epoch of a tiny ResNet; a stand-in for model selection saves its weights as model.pt every epoch, before
    the writer runs at COMPLETED."""
    network = _network()
    models = tmp_path / "models"
    models.mkdir(parents=True, exist_ok=True)

    def select(engine):
        torch.save(network.state_dict(), models / "model.pt")

    train = _items(24, seed=1)
    trainer = SupervisedTrainer(device=torch.device("cpu"), max_epochs=1, train_data_loader=_loader(train),
                                network=network, optimizer=torch.optim.SGD(network.parameters(), lr=0.05),
                                loss_function=torch.nn.CrossEntropyLoss(), train_handlers=[writer])
    trainer.add_event_handler(Events.EPOCH_COMPLETED, select)
    trainer.run()
    return trainer


def test_writer_saves_the_dfr_model_from_the_erm_checkpoint_and_is_idempotent(tmp_path):
    validation, test = _items(40, seed=2), _items(12, seed=3)
    writer = DFRLastLayerWriter(_loader(validation), tmp_path / "models", c_grid=[1.0, 0.1], n_draws=3, seed=5)
    trainer = _trained_erm(tmp_path, writer)
    models = tmp_path / "models"
    erm, dfr_state = _state(models / "erm_model.pt"), _state(models / "model.pt")
    assert set(erm) == set(dfr_state)
    assert all(torch.equal(erm[k], dfr_state[k]) for k in erm if not k.startswith("fc."))  # features untouched
    assert not torch.equal(erm["fc.weight"], dfr_state["fc.weight"])

    # the fit by hand on the ERM network's validation features (own forward hook), then the DFR model on the test
    # images: its logits are the test features through the refitted layer
    def features_and_logits(state, items):
        network = _network()
        network.load_state_dict(state)
        network.eval()
        captured = []
        handle = network.avgpool.register_forward_hook(lambda m, i, o: captured.append(o.flatten(1)))
        with torch.no_grad():
            logits = network(torch.stack([item["image"] for item in items]))
        handle.remove()
        return captured[0].double().numpy(), logits.double().numpy()

    val_features, _ = features_and_logits(erm, validation)
    y, s = (np.array([item[k] for item in validation]) for k in ("y", "s"))
    expected = DeepFeatureReweighting(c_grid=[1.0, 0.1], n_draws=3, seed=5).fit(val_features, y, s)
    test_features, test_logits = features_and_logits(dfr_state, test)
    weight, bias = dfr_state["fc.weight"].double().numpy(), dfr_state["fc.bias"].double().numpy()
    np.testing.assert_allclose(test_logits, test_features @ weight.T + bias, rtol=0, atol=1e-4)
    np.testing.assert_allclose(test_logits[:, 1] - test_logits[:, 0], expected.decision_function(test_features),
                               rtol=0, atol=1e-3)
    record = json.loads((models / "dfr.json").read_text())
    assert record["C"] == expected.C_ and record["scores"] == {str(c): v for c, v in expected.scores_.items()}
    assert record["subset_size_per_group"] == 10 and record["n_draws"] == 3 and record["seed"] == 5
    assert record["model_sha256"] == hashlib.sha256((models / "model.pt").read_bytes()).hexdigest()
    assert trainer.state.metrics["dfr_C"] == expected.C_

    # a rerun of the finished run (COMPLETED again, model.pt is DFR's): refit from erm_model.pt, the same model
    writer(trainer)
    again = _state(models / "model.pt")
    assert all(torch.equal(again[k], dfr_state[k]) for k in dfr_state)
    assert all(torch.equal(v, erm[k]) for k, v in _state(models / "erm_model.pt").items())
    # killed after dfr.json, before model.pt: model.pt is still the ERM one, refitted from the same weights
    shutil.copyfile(models / "erm_model.pt", models / "model.pt")
    writer(trainer)
    assert all(torch.equal(v, dfr_state[k]) for k, v in _state(models / "model.pt").items())
    # a new selection (a run started over): model.pt is not the recorded one, so it becomes the ERM model
    fresh = _network().state_dict()
    torch.save(fresh, models / "model.pt")
    writer(trainer)
    assert all(torch.equal(v, fresh[k]) for k, v in _state(models / "erm_model.pt").items())


def test_writer_refuses_a_layer_that_does_not_feed_fc(tmp_path):
    network = _network()
    (tmp_path / "models").mkdir()
    torch.save(network.state_dict(), tmp_path / "models" / "model.pt")
    writer = DFRLastLayerWriter(_loader(_items(16, seed=0)), tmp_path / "models", n_draws=1, layer="layer1")

    class _Engine:
        pass

    engine = _Engine()
    engine.network = network
    with pytest.raises(InputError, match="^layer: its features have 4 channels"):
        writer(engine)
    with pytest.raises(InputError, match="dfr_n_draws"):
        DFRLastLayerWriter(None, tmp_path, n_draws=-1)
