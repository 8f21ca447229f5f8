"""The mask-guided losses (issue 15) against independent computations: input gradients by central finite
differences, penalties by explicit loops over pixels, Grad-CAM by MONAI's ``monai.visualize.GradCAM``, and the
gradient with respect to the network's parameters (double back-propagation) by finite differences of the loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from monai.visualize import GradCAM
from torch import nn

from spatialspec.losses import (
    ActivationDifferenceLoss,
    AttentionMaskLoss,
    ChannelCrossEntropyLoss,
    GradMaskLoss,
    RightReasonsLoss,
)
from spatialspec.losses.mask_guided import differentiable_grad_cam, location_at

EPS = 1e-6


class TinyNet(nn.Module):
    """A smooth classifier whose images do not interact (no batch norm): a strided convolution, tanh, global
    pooling, a linear head; ``features`` is the 3 x 3 map Grad-CAM explains."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 3, 3, stride=2, padding=1), nn.Tanh())
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    net = TinyNet().double()
    x = torch.randn(3, 1, 6, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 1])
    location = torch.zeros(3, 1, 6, 6, dtype=torch.float64)
    location[0, 0, 1:4, 2:5] = 1
    location[1, 0, 0:2, 0:6] = 1
    location[2, 0, 3:6, 3:6] = 1
    return net, x, y, location


def _fd_input_gradient(f, x: torch.Tensor) -> torch.Tensor:
    """d f(x) / dx by central differences, pixel by pixel (f: images -> scalar)."""
    grad = torch.zeros_like(x)
    with torch.no_grad():
        _fill(grad, f, x)
    return grad


def _fill(grad: torch.Tensor, f, x: torch.Tensor) -> None:
    for index in range(x.numel()):
        step = torch.zeros(x.numel(), dtype=x.dtype)
        step[index] = EPS
        step = step.reshape(x.shape)
        grad.view(-1)[index] = (f(x + step) - f(x - step)) / (2 * EPS)


def _outside_sum(values: torch.Tensor, location: torch.Tensor, per_pixel) -> list[float]:
    """Per image: sum over channels and pixels outside the location label of per_pixel(value), as a loop."""
    sums = []
    for i in range(values.shape[0]):
        total = 0.0
        for c in range(values.shape[1]):
            for h in range(values.shape[2]):
                for w in range(values.shape[3]):
                    if location[i, 0, h, w] < 0.5:
                        total += per_pixel(float(values[i, c, h, w]))
        sums.append(total)
    return sums


def _ce(net, x, y) -> float:
    return float(F.cross_entropy(net(x), y))


def _expected(ce: float, weight: float, penalties: list[float], has: list[float]) -> float:
    return ce + weight * sum(p * h for p, h in zip(penalties, has, strict=True)) / len(penalties)


def _param_gradient_check(net: nn.Module, loss_value) -> None:
    """The autograd gradient of ``loss_value()`` (built with create_graph) against central differences of it, for
    every parameter entry of ``net``."""
    net.zero_grad()
    loss_value().backward()
    for param in net.parameters():
        analytic = param.grad.clone()
        for index in range(param.numel()):
            original = float(param.data.view(-1)[index])
            param.data.view(-1)[index] = original + EPS
            plus = loss_value().item()
            param.data.view(-1)[index] = original - EPS
            minus = loss_value().item()
            param.data.view(-1)[index] = original
            assert float(analytic.view(-1)[index]) == pytest.approx((plus - minus) / (2 * EPS), rel=1e-4, abs=1e-7)


# ---- Right for the Right Reasons ----------------------------------------------------------------------------------


def test_right_reasons_against_finite_differences_and_a_pixel_loop():
    net, x, y, location = _setup()
    has = [1.0, 0.0, 1.0]
    weight = 3.0
    grad = _fd_input_gradient(lambda z: float(torch.log_softmax(net(z), dim=1).sum()), x)
    penalties = _outside_sum(grad, location, lambda g: g * g)
    assert min(penalties) > 0
    inputs = x.clone().requires_grad_(True)
    loss_fn = RightReasonsLoss(weight=weight)
    loss = loss_fn(net(inputs), y, inputs, location, torch.tensor(has))
    assert float(loss) == pytest.approx(_expected(_ce(net, x, y), weight, penalties, has), rel=1e-6)
    assert float(loss_fn.last_terms["guided"]) == pytest.approx((penalties[0] + penalties[2]) / 3, rel=1e-6)


def test_right_reasons_parameter_gradient():
    net, x, y, location = _setup(1)

    def value():
        inputs = x.clone().requires_grad_(True)
        return RightReasonsLoss(weight=5.0)(net(inputs), y, inputs, location)

    _param_gradient_check(net, value)


# ---- GradMask -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_gradmask_against_finite_differences_and_a_pixel_loop(norm):
    net, x, y, location = _setup(2)
    has = [1.0, 1.0, 0.0]
    grad = _fd_input_gradient(lambda z: float((net(z)[:, 1] - net(z)[:, 0]).sum()), x)
    penalties = _outside_sum(grad, location, abs if norm == "l1" else (lambda g: g * g))
    inputs = x.clone().requires_grad_(True)
    loss = GradMaskLoss(weight=2.0, norm=norm)(net(inputs), y, inputs, location, torch.tensor(has))
    assert float(loss) == pytest.approx(_expected(_ce(net, x, y), 2.0, penalties, has), rel=1e-6)


def test_gradmask_parameter_gradient():
    net, x, y, location = _setup(3)

    def value():
        inputs = x.clone().requires_grad_(True)
        return GradMaskLoss(weight=4.0, norm="l2")(net(inputs), y, inputs, location)

    _param_gradient_check(net, value)


# ---- ActDiff ------------------------------------------------------------------------------------------------------


def _layer_outputs(net: TinyNet, x: torch.Tensor) -> list[torch.Tensor]:
    conv = net.features[0](x)
    return [conv, torch.tanh(conv)]


def test_activation_difference_against_a_loop():
    net, x, y, location = _setup(4)
    masked = torch.where(location > 0.5, x, torch.randn_like(x))
    has = [0.0, 1.0, 1.0]
    a, m = _layer_outputs(net, x), _layer_outputs(net, masked)
    penalties = []
    for i in range(3):
        total = 0.0
        for layer_a, layer_m in zip(a, m, strict=True):
            values = (layer_a[i] - layer_m[i]).reshape(-1).tolist()
            total += sum(v * v for v in values) / len(values)
        penalties.append(total)
    loss = ActivationDifferenceLoss(weight=0.7)(net(x), y, a, m, torch.tensor(has))
    assert float(loss) == pytest.approx(_expected(_ce(net, x, y), 0.7, penalties, has), rel=1e-9)


def test_activation_difference_parameter_gradient():
    net, x, y, location = _setup(5)
    masked = torch.where(location > 0.5, x, torch.flip(x, dims=(3,)))

    def value():
        return ActivationDifferenceLoss(weight=2.0)(net(x), y, _layer_outputs(net, x), _layer_outputs(net, masked))

    _param_gradient_check(net, value)


# ---- GAIN-style attention -----------------------------------------------------------------------------------------


def test_grad_cam_equals_monai_grad_cam():
    net, x, y, _ = _setup(6)
    net.eval()
    expected = GradCAM(nn_module=net, target_layers="features").compute_map(x.float().double(), class_idx=1)
    features = net.features(x)
    logits = net.head(features.mean(dim=(2, 3)))
    cam = differentiable_grad_cam(logits, features, torch.ones(3, dtype=torch.long))
    assert cam.shape == (3, 1, 3, 3) and float(cam.max()) > 0
    torch.testing.assert_close(cam, expected.to(cam.dtype), rtol=1e-6, atol=1e-9)


def test_attention_mask_against_monai_grad_cam_and_block_means():
    net, x, y, location = _setup(7)
    weight, omega, sigma = 1.5, 4.0, 0.02
    cams = {c: GradCAM(nn_module=net, target_layers="features").compute_map(x, class_idx=c) for c in (0, 1)}
    has = [1.0, 1.0, 0.0]
    penalties = []
    for i in range(3):
        cam = cams[int(y[i])][i, 0]
        total = 0.0
        for h in range(3):
            for w in range(3):
                block = float(location[i, 0, 2 * h:2 * h + 2, 2 * w:2 * w + 2].mean())  # the 2 x 2 footprint
                attention = 1.0 / (1.0 + math.exp(-omega * (float(cam[h, w]) - sigma)))
                total += (attention - block) ** 2
        penalties.append(total / 9)
    features = net.features(x)
    loss = AttentionMaskLoss(weight=weight, omega=omega, sigma=sigma)(
        net.head(features.mean(dim=(2, 3))), y, features, location, torch.tensor(has))
    assert float(loss) == pytest.approx(_expected(_ce(net, x, y), weight, penalties, has), rel=1e-6)


def test_attention_mask_parameter_gradient():
    net, x, y, location = _setup(8)

    def value():
        features = net.features(x)
        return AttentionMaskLoss(weight=3.0, omega=4.0, sigma=0.02)(net.head(features.mean(dim=(2, 3))), y, features,
                                                                      location)

    _param_gradient_check(net, value)


def test_location_at_is_the_area_mean():
    location = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert location_at(location, (2, 2))[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    assert location_at(location[:, 0], (4, 4)).shape == (1, 1, 4, 4)


# ---- images without a location label, and bad input ----------------------------------------------------------------


def _all_losses(net, x, y, location, has):
    inputs = x.clone().requires_grad_(True)
    features = net.features(inputs)
    logits = net.head(features.mean(dim=(2, 3)))
    noise = [torch.randn_like(a) for a in _layer_outputs(net, x)]
    return {
        "rrr": RightReasonsLoss(10.0)(logits, y, inputs, location, has),
        "gradmask": GradMaskLoss(10.0)(logits, y, inputs, location, has),
        "actdiff": ActivationDifferenceLoss(10.0)(logits, y, _layer_outputs(net, inputs), noise, has),
        "gain": AttentionMaskLoss(10.0, sigma=0.0)(logits, y, features, location, has),
    }


def test_images_without_a_location_label_give_exactly_the_cross_entropy():
    net, x, y, location = _setup(9)
    ce = ChannelCrossEntropyLoss()(net(x), y)
    for name, loss in _all_losses(net, x, y, location, torch.zeros(3)).items():
        assert torch.equal(loss.detach(), ce.detach()), name
    # no image with a location label: no input gradient is taken (these inputs do not even require grad)
    inputs = x.clone()
    assert torch.equal(RightReasonsLoss(5.0)(net(inputs), y, inputs, location, torch.zeros(3)), ce)
    assert torch.equal(GradMaskLoss(0.0)(net(inputs), y, inputs, location), ce)
    # with location labels every penalty is positive: the flag is what turned them off
    for name, loss in _all_losses(net, x, y, location, torch.ones(3)).items():
        assert float(loss) > float(ce) + 1e-6, name


def test_an_unlabelled_image_does_not_read_its_location_label():
    net, x, y, location = _setup(10)
    has = torch.tensor([1.0, 0.0, 1.0])
    other = location.clone()
    other[1] = 1.0 - other[1]
    first, second = _all_losses(net, x, y, location, has), _all_losses(net, x, y, other, has)
    for name in ("rrr", "gradmask", "gain"):
        assert torch.equal(first[name], second[name]), name


def test_bad_arguments_name_the_parameter():
    net, x, y, location = _setup()
    with pytest.raises(ValueError, match="weight"):
        RightReasonsLoss(weight=-1.0)
    with pytest.raises(ValueError, match="norm"):
        GradMaskLoss(norm="l3")
    with pytest.raises(ValueError, match="omega"):
        AttentionMaskLoss(omega=0.0)
    with pytest.raises(ValueError, match="inputs must require grad"):
        RightReasonsLoss()(net(x), y, x, location)
    inputs = x.clone().requires_grad_(True)
    three = nn.Linear(36, 3).double()(inputs.flatten(1))
    with pytest.raises(ValueError, match="logits must be B x 2"):
        GradMaskLoss()(three, y, inputs, location)
    with pytest.raises(ValueError, match="location must be B x 1"):
        RightReasonsLoss()(net(inputs), y, inputs, location.repeat(1, 2, 1, 1))
    with pytest.raises(ValueError, match="has_location"):
        RightReasonsLoss()(net(inputs), y, inputs, location, torch.ones(2))
    with pytest.raises(ValueError, match="masked_activations"):
        ActivationDifferenceLoss()(net(x), y, _layer_outputs(net, x), _layer_outputs(net, x)[:1])
