"""Mask-guided classification losses: cross-entropy plus a penalty that ties an image classifier's explanation to a
location label (issue 15). They extend the spatial-specificity comparison of Saab et al. 2022 (Sec. 3.1, 5.1:
location labels supervise a pixel-wise network) to the global-pooling classifier of Sec. 5.1 / App. A.1: the same
location labels (mask, box, dilation or patch, any level of :mod:`spatialspec.levels`) steer *where* the classifier
looks instead of what it outputs per pixel.

Shared conventions:

* ``logits``: ``B x C`` classifier outputs; ``target``: class indices ``B`` or ``B x 1`` (any numeric dtype).
* ``location``: ``B x 1 x H x W`` (or ``B x H x W``), 1 inside the location label (where the abnormality may be),
  0 outside; the penalties act on ``1 - location``.
* ``has_location``: ``B`` weights, 1 for images that carry a location label and 0 for those that do not (a label
  budget, Sec. 5.2); ``None`` means every image has one. A weight-0 image contributes the cross-entropy only.
* Every loss is ``CE(logits, target) + weight * mean_i(has_location_i * penalty_i)``: the penalty is averaged over
  the whole batch (images without a location label count as 0), so a batch without any location label gives
  exactly the cross-entropy (and skips the penalty's extra passes). :attr:`MaskGuidedLoss.last_terms` keeps both
  terms of the latest call (detached).
* The input-gradient penalties (:class:`RightReasonsLoss`, :class:`GradMaskLoss`) and the Grad-CAM of
  :class:`AttentionMaskLoss` are differentiated with ``create_graph=True``, so that ``loss.backward()`` trains the
  network through them (double back-propagation). They differentiate the batch's summed output: with batch norm
  in training mode a sample's output also depends on the other samples' inputs, which the gradient then includes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .cross_entropy import ChannelCrossEntropyLoss

__all__ = ["MaskGuidedLoss", "RightReasonsLoss", "GradMaskLoss", "ActivationDifferenceLoss", "AttentionMaskLoss",
           "input_gradient", "differentiable_grad_cam", "location_at"]


def input_gradient(output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """The gradient of ``output.sum()`` with respect to ``inputs``, kept differentiable (``create_graph=True``).

    Raises:
        ValueError: naming ``inputs`` when it does not require grad or ``output`` was not computed from it.
    """
    if not inputs.requires_grad:
        raise ValueError("inputs must require grad and the logits must be computed from them (a network forward pass "
                         "on inputs.requires_grad_(True))")
    (grad,) = torch.autograd.grad(output.sum(), inputs, create_graph=True, allow_unused=True)
    if grad is None:
        raise ValueError("inputs: the logits were not computed from these inputs")
    return grad


def location_at(location: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``B x 1 x H x W`` location labels at the spatial ``size`` of a feature map: the fraction of each map pixel's
    footprint inside the label (area interpolation); unchanged at equal size."""
    location = _as_batch_map(location, "location")
    if tuple(location.shape[2:]) == tuple(size):
        return location
    return F.interpolate(location, size=tuple(size), mode="area")


def differentiable_grad_cam(logits: torch.Tensor, features: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017) of class ``classes[i]`` for each image, differentiable in the network's
    parameters: ``ReLU(sum_k alpha_k A_k)`` with ``alpha_k`` the spatial mean of ``d logit_c / d A_k``.

    Args:
        logits: ``B x C`` outputs computed from ``features``.
        features: ``B x K x h x w`` activations A of the explained layer.
        classes: ``B`` class indices.

    Returns:
        ``B x 1 x h x w`` maps, before any normalisation (``monai.visualize.GradCAM.compute_map``'s raw map).
    """
    score = logits.gather(1, classes.reshape(-1, 1).long().to(logits.device))
    grads = input_gradient(score, features)
    weights = grads.mean(dim=tuple(range(2, grads.ndim)), keepdim=True)
    return F.relu((weights * features).sum(dim=1, keepdim=True))


def _as_batch_map(x: torch.Tensor, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"{name} must be B x 1 x H x W (or B x H x W), got shape {tuple(x.shape)}")
    return x.float()


class MaskGuidedLoss(nn.Module):
    """Base of the mask-guided losses: ``CE + weight * mean_i(has_location_i * penalty_i)`` (see the module doc).

    Args:
        weight: lambda, the weight of the penalty (>= 0).
        loss: the classification loss (default :class:`ChannelCrossEntropyLoss`, mean over the batch).

    Raises:
        ValueError: naming ``weight`` when it is negative or not a number.
    """

    def __init__(self, weight: float = 1.0, loss: nn.Module | None = None) -> None:
        super().__init__()
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not float(weight) >= 0.0:
            raise ValueError(f"weight must be a number >= 0, got {weight!r}")
        self.weight = float(weight)
        self.classification = loss if loss is not None else ChannelCrossEntropyLoss()
        self.last_terms: dict[str, torch.Tensor] = {}

    def needs_penalty(self, has_location: torch.Tensor | None) -> bool:
        """Whether the penalty can change the loss: a weight > 0 and at least one image with a location label (the
        double back-propagation is skipped otherwise)."""
        return self.weight > 0.0 and (has_location is None or bool((torch.as_tensor(has_location) > 0).any()))

    def _cross_entropy_only(self, logits: torch.Tensor, target: torch.Tensor,
                            has_location: torch.Tensor | None) -> torch.Tensor:
        return self._total(logits, target, logits.new_zeros(logits.shape[0]), has_location)

    def _total(self, logits: torch.Tensor, target: torch.Tensor, penalty: torch.Tensor,
               has_location: torch.Tensor | None) -> torch.Tensor:
        """``CE + weight * mean(has_location * penalty)``, recording both terms in :attr:`last_terms`."""
        ce = self.classification(logits, target)
        if has_location is not None:
            has = torch.as_tensor(has_location).to(device=penalty.device, dtype=penalty.dtype).reshape(-1)
            if has.shape != penalty.shape:
                raise ValueError(f"has_location must hold one weight per image ({penalty.shape[0]}), got shape "
                                 f"{tuple(torch.as_tensor(has_location).shape)}")
            # where() rather than a product: a weight-0 image adds nothing, not even a NaN of its penalty
            penalty = torch.where(has > 0, penalty * has, torch.zeros_like(penalty))
        guided = penalty.mean()
        self.last_terms = {"ce": ce.detach(), "guided": guided.detach()}
        return ce + self.weight * guided


class RightReasonsLoss(MaskGuidedLoss):
    """Right for the Right Reasons (Ross, Hughes and Doshi-Velez, IJCAI 2017, Eq. 1) with the location label as the
    annotation: ``CE + weight * mean_i sum_{pixels p outside the label} (d/dx_{i,p} sum_k log p_k(x_i))^2``.

    The squared input gradient of the summed log-probabilities is summed over channels and the pixels outside the
    location label (``A = 1 - location``, Ross et al.'s annotation of irrelevant inputs), per image.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x = torch.randn(3, 1, 2, 2, requires_grad=True)
        >>> loss = RightReasonsLoss(weight=10.0)(net(x), torch.tensor([0, 1, 1]), x, torch.ones(3, 1, 2, 2))
        >>> bool(torch.isclose(loss, ChannelCrossEntropyLoss()(net(x), torch.tensor([0, 1, 1]))))  # all inside
        True
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor, inputs: torch.Tensor, location: torch.Tensor,
                has_location: torch.Tensor | None = None) -> torch.Tensor:
        """The loss of one batch; ``logits`` must be computed from ``inputs`` (``inputs.requires_grad``)."""
        if not self.needs_penalty(has_location):
            return self._cross_entropy_only(logits, target, has_location)
        grad = input_gradient(torch.log_softmax(logits, dim=1), inputs)
        outside = 1.0 - _as_batch_map(location, "location").to(grad.device)
        penalty = (outside * grad.square()).flatten(1).sum(dim=1)
        return self._total(logits, target, penalty, has_location)


class GradMaskLoss(MaskGuidedLoss):
    """GradMask (Simpson, Dutil, Bengio and Cohen, 2019): ``CE + weight * mean_i || (1 - location_i) *
    d(logit_1 - logit_0)/dx_i ||``, the saliency of the two-class logit difference outside the location label.

    The gradient of ``|logit_1 - logit_0|`` (the paper's saliency) differs from that of ``logit_1 - logit_0`` only
    by its sign, which neither norm sees.

    Args:
        weight, loss: see :class:`MaskGuidedLoss`.
        norm: ``"l1"`` (sum of absolute values) or ``"l2"`` (sum of squares, differentiable at zero) over channels
            and pixels.

    Raises:
        ValueError: naming ``norm`` when it is neither, or ``logits`` when it does not have two classes.
    """

    def __init__(self, weight: float = 1.0, norm: str = "l1", loss: nn.Module | None = None) -> None:
        super().__init__(weight, loss)
        if norm not in ("l1", "l2"):
            raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")
        self.norm = norm

    def forward(self, logits: torch.Tensor, target: torch.Tensor, inputs: torch.Tensor, location: torch.Tensor,
                has_location: torch.Tensor | None = None) -> torch.Tensor:
        """The loss of one batch; ``logits`` (``B x 2``) must be computed from ``inputs``."""
        if logits.ndim != 2 or logits.shape[1] != 2:
            raise ValueError(f"logits must be B x 2 (the two class logits), got shape {tuple(logits.shape)}")
        if not self.needs_penalty(has_location):
            return self._cross_entropy_only(logits, target, has_location)
        grad = input_gradient(logits[:, 1] - logits[:, 0], inputs)
        outside = (1.0 - _as_batch_map(location, "location").to(grad.device)) * grad
        penalty = outside.abs() if self.norm == "l1" else outside.square()
        return self._total(logits, target, penalty.flatten(1).sum(dim=1), has_location)


class ActivationDifferenceLoss(MaskGuidedLoss):
    """ActDiff (Viviano, Simpson, Dutil, Bengio and Cohen, ICLR 2021): ``CE + weight * mean_i sum_l
    mean((a_l(x_i) - a_l(x~_i))^2)``, the distance between the activations of layers ``l`` on the image x and on
    x~, the image with every pixel outside its location label replaced (shuffled or resampled background,
    :func:`spatialspec.guided.replace_background`).

    The distance of each layer is its mean squared difference per image (the squared Euclidean distance divided by
    the layer's size, so that layers of different sizes weigh alike); gradients flow through both passes.

    Raises:
        ValueError: naming ``masked_activations`` when the two lists do not match.
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor, activations: Sequence[torch.Tensor],
                masked_activations: Sequence[torch.Tensor], has_location: torch.Tensor | None = None) -> torch.Tensor:
        """The loss of one batch: ``logits`` of x, the activations of the same layers on x and on x~, in order."""
        activations, masked_activations = list(activations), list(masked_activations)
        if not activations or len(activations) != len(masked_activations):
            raise ValueError(f"masked_activations must match activations layer for layer, got {len(activations)} and "
                             f"{len(masked_activations)} layers")
        penalty = logits.new_zeros(logits.shape[0], dtype=torch.promote_types(logits.dtype, torch.float32))
        for a, m in zip(activations, masked_activations, strict=True):
            if a.shape != m.shape:
                raise ValueError(f"masked_activations: shape {tuple(m.shape)} differs from {tuple(a.shape)}")
            difference = (a - m).to(torch.promote_types(a.dtype, torch.float32))  # half precision: summed in float32
            penalty = penalty + difference.square().flatten(1).mean(dim=1)
        return self._total(logits, target, penalty, has_location)


class AttentionMaskLoss(MaskGuidedLoss):
    """Attention supervision in the manner of GAIN (Li, Wu, Peng, Ernst and Fu, CVPR 2018, Eq. 3 and the
    segmentation-supervised extension, Sec. 4): ``CE + weight * mean_i mean_p (T(cam_i)_p - location_i_p)^2``.

    ``cam_i`` is the Grad-CAM of class ``y_i`` (or of ``target_class``) at ``features``' layer
    (:func:`differentiable_grad_cam`), ``T(A) = sigmoid(omega * (A - sigma))`` GAIN's soft threshold, and the
    location label is brought to the map's resolution by area interpolation (:func:`location_at`).

    Args:
        weight, loss: see :class:`MaskGuidedLoss`.
        omega, sigma: scale and threshold of ``T`` (GAIN's Eq. 3).
        target_class: explain this class for every image; ``None`` explains each image's own class y.

    Raises:
        ValueError: naming ``omega`` when it is not > 0.
    """

    def __init__(self, weight: float = 1.0, omega: float = 10.0, sigma: float = 0.5, target_class: int | None = None,
                 loss: nn.Module | None = None) -> None:
        super().__init__(weight, loss)
        if not float(omega) > 0.0:
            raise ValueError(f"omega must be > 0, got {omega!r}")
        self.omega, self.sigma, self.target_class = float(omega), float(sigma), target_class

    def attention(self, logits: torch.Tensor, target: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """``T(cam)``, the ``B x 1 x h x w`` soft attention map the penalty compares with the location label."""
        classes = torch.as_tensor(target).reshape(-1).round().long() if self.target_class is None else \
            torch.full((logits.shape[0],), int(self.target_class), dtype=torch.long)
        cam = differentiable_grad_cam(logits, features, classes)
        return torch.sigmoid(self.omega * (cam - self.sigma))

    def forward(self, logits: torch.Tensor, target: torch.Tensor, features: torch.Tensor, location: torch.Tensor,
                has_location: torch.Tensor | None = None) -> torch.Tensor:
        """The loss of one batch; ``logits`` must be computed from ``features`` (the explained layer's output)."""
        if not self.needs_penalty(has_location):
            return self._cross_entropy_only(logits, target, has_location)
        attention = self.attention(logits, target, features)
        labels = location_at(location, attention.shape[2:]).to(attention.device)
        penalty = (attention - labels).square().flatten(1).mean(dim=1)
        return self._total(logits, target, penalty, has_location)
