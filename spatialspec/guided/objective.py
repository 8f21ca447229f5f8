"""The trainer objectives of the mask-guided classifier methods (issue 15): the ``loss_function`` of a MONAI
``SupervisedTrainer`` that wires one of the losses of :mod:`spatialspec.losses.mask_guided` to the trainer's own
forward pass and to the batch's location label."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from monai.utils import min_version, optional_import
from torch import nn

from spatialspec.handlers.batch_keys import batch_keys
from spatialspec.handlers.epoch_means import EpochMeans
from spatialspec.losses.mask_guided import (
    ActivationDifferenceLoss,
    AttentionMaskLoss,
    GradMaskLoss,
    MaskGuidedLoss,
    RightReasonsLoss,
)

from .background import BACKGROUND_MODES, replace_background

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["MaskGuidedObjective", "InputGradientObjective", "ActivationDifferenceObjective", "AttentionMaskObjective"]


def _module_name(network: nn.Module, name: str) -> str:
    """``name`` as a module of ``network``, with the ``module.`` prefix of a DDP / DataParallel wrapper if needed."""
    modules = dict(network.named_modules())
    for candidate in (name, f"module.{name}"):
        if candidate in modules:
            return candidate
    names = [n for n in modules if n][:12]
    raise ValueError(f"layers: {name!r} is not a module of the {type(network).__name__} (e.g. {names})")


class MaskGuidedObjective:
    """Base of the mask-guided trainer objectives: ``loss_function(pred, label)`` of a ``SupervisedTrainer`` that
    is also an ignite handler (list it in ``+train#attached``, i.e. ``train#handlers`` through
    :class:`spatialspec.handlers.AttachToTrainer`).

    The location label and the per-image ``has_location`` flag are extra batch keys: they stay in the batch and are
    read from ``engine.state.batch`` on every call, as :class:`spatialspec.robust.george.GroupDROObjective` reads
    its groups. Hooks on the network see the trainer's forward pass of each iteration (armed at
    ``ITERATION_STARTED``, disarmed when that pass ends, so validation passes and other callers are never touched):
    they keep its input (with ``input_grad`` made to require grad first, for the input-gradient penalties) and the
    outputs of ``layers``. The loss terms' epoch means are reported as ``<prefix>_ce`` and ``<prefix>_guided``.
    Validation and checkpoint selection keep the plain loss (``loss`` of the bundle), as Seg-SPL does.

    Args:
        network: the network the trainer trains.
        loss: the :class:`spatialspec.losses.MaskGuidedLoss`.
        layers: module names of ``network`` whose outputs the loss reads.
        input_grad: whether the loss differentiates with respect to the input.
        location_key, has_location_key: the batch keys of the location label (``B x 1 x H x W``) and of the flag
            (``B``; a batch without that key counts every image as labelled).
        prefix: the reported metrics' prefix (the method's name).

    Raises:
        ValueError: naming ``loss`` when it is not a :class:`MaskGuidedLoss`, or ``layers`` when one is not a module.
    """

    def __init__(self, network: nn.Module, loss: MaskGuidedLoss, layers: Sequence[str] = (), input_grad: bool = False,
                 location_key: str = "location", has_location_key: str = "has_location", prefix: str = "guided"
                 ) -> None:
        if not isinstance(loss, MaskGuidedLoss):
            raise ValueError(f"loss must be a spatialspec.losses.MaskGuidedLoss, got {type(loss).__name__}")
        self.network, self.loss, self.input_grad = network, loss, bool(input_grad)
        self.location_key, self.has_location_key = location_key, has_location_key
        self.layers = [_module_name(network, name) for name in layers]
        self.means = EpochMeans(prefix)
        self.inputs: torch.Tensor | None = None
        self.activations: dict[str, torch.Tensor] = {}
        self._armed = self._recording = False
        self._engine: Engine | None = None
        self._handles = [network.register_forward_pre_hook(self._pre_forward),
                         network.register_forward_hook(self._post_forward)]
        modules = dict(network.named_modules())
        self._handles += [modules[name].register_forward_hook(self._keeper(name)) for name in self.layers]

    # ---- hooks ------------------------------------------------------------------------------------------------

    def _pre_forward(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not (self._armed and torch.is_grad_enabled()):
            return None
        self._recording = True
        self.inputs = args[0]
        if not self.input_grad:
            return None
        self.inputs = args[0].detach().requires_grad_(True)
        return (self.inputs, *args[1:])

    def _post_forward(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self._armed = self._recording = False

    def _keeper(self, name: str):
        def keep(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
            if self._recording:
                self.activations[name] = output
        return keep

    def _arm(self, engine: Engine | None = None) -> None:
        self._armed, self.inputs, self.activations = True, None, {}

    def remove(self) -> None:
        """Detach the hooks from the network."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    # ---- handler ----------------------------------------------------------------------------------------------

    def attach(self, engine: Engine) -> None:
        """Bind to the trainer: arm the hooks for each iteration's forward pass, report the terms' epoch means."""
        self._engine = engine
        engine.add_event_handler(Events.ITERATION_STARTED, self._arm)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.means.report)

    def _batch_labels(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        found = batch_keys(self, self._engine, [self.location_key], [self.has_location_key],
                           "the location label of the level: see bundles/mask_guided_classification/configs/"
                           "train.yaml, train#target")
        location = torch.as_tensor(found[self.location_key]).to(device).float()
        has = found.get(self.has_location_key)
        return location, None if has is None else torch.as_tensor(has).to(device)

    def __call__(self, pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """The loss of the batch the network has just predicted."""
        location, has = self._batch_labels(pred.device)
        if self.inputs is None or (self.layers and not self.activations):
            raise RuntimeError(f"{type(self).__name__}: no training forward pass was seen in this iteration (is the "
                               "objective attached to the trainer that runs this network?)")
        total = self.guided_loss(pred, label, location, has)
        for name, value in self.loss.last_terms.items():
            self.means.add(name, value)
        return total

    def guided_loss(self, pred: torch.Tensor, label: torch.Tensor, location: torch.Tensor,
                    has_location: torch.Tensor | None) -> torch.Tensor:
        """The method's loss of the batch (implemented by each objective)."""
        raise NotImplementedError


class InputGradientObjective(MaskGuidedObjective):
    """The objective of ``rrr`` (:class:`spatialspec.losses.RightReasonsLoss`) and ``gradmask``
    (:class:`spatialspec.losses.GradMaskLoss`): the loss differentiates the logits with respect to the input of the
    trainer's forward pass.

    Args:
        network, loss, location_key, has_location_key, prefix: see :class:`MaskGuidedObjective`.

    Raises:
        ValueError: naming ``loss`` when it is neither input-gradient loss.
    """

    def __init__(self, network: nn.Module, loss: RightReasonsLoss | GradMaskLoss, location_key: str = "location",
                 has_location_key: str = "has_location", prefix: str = "guided") -> None:
        if not isinstance(loss, RightReasonsLoss | GradMaskLoss):
            raise ValueError(f"loss must be a RightReasonsLoss or a GradMaskLoss, got {type(loss).__name__}")
        super().__init__(network, loss, (), True, location_key, has_location_key, prefix)

    def guided_loss(self, pred: torch.Tensor, label: torch.Tensor, location: torch.Tensor,
                    has_location: torch.Tensor | None) -> torch.Tensor:
        """The loss with the input gradient of the trainer's forward pass."""
        return self.loss(pred, label, self.inputs, location, has_location)


class ActivationDifferenceObjective(MaskGuidedObjective):
    """The objective of ``actdiff`` (:class:`spatialspec.losses.ActivationDifferenceLoss`): the activations of
    ``layers`` in the trainer's forward pass against those of a second pass on the images with their background
    replaced (:func:`spatialspec.guided.replace_background`, torch's global RNG, so a resumed run draws the same).

    The second pass runs in training mode, so batch-norm layers also update their running statistics with the
    replaced images; it is skipped when no image of the batch has a location label or ``weight`` is 0.

    Args:
        network, loss, location_key, has_location_key, prefix: see :class:`MaskGuidedObjective`.
        layers: the module names whose activations are compared (e.g. ``layer1`` ... ``layer4`` of MONAI ResNet).
        background: ``"shuffle"`` or ``"noise"`` (:data:`spatialspec.guided.BACKGROUND_MODES`).

    Raises:
        ValueError: naming ``layers`` when empty, ``background`` when unknown, or ``loss`` when of another kind.
    """

    def __init__(self, network: nn.Module, loss: ActivationDifferenceLoss, layers: Sequence[str],
                 background: str = "shuffle", location_key: str = "location", has_location_key: str = "has_location",
                 prefix: str = "guided") -> None:
        if not isinstance(loss, ActivationDifferenceLoss):
            raise ValueError(f"loss must be an ActivationDifferenceLoss, got {type(loss).__name__}")
        if isinstance(layers, str) or not list(layers):
            raise ValueError(f"layers must name at least one module of the network, got {layers!r}")
        if background not in BACKGROUND_MODES:
            raise ValueError(f"background must be one of {', '.join(BACKGROUND_MODES)}, got {background!r}")
        self.background = background
        super().__init__(network, loss, layers, False, location_key, has_location_key, prefix)

    def guided_loss(self, pred: torch.Tensor, label: torch.Tensor, location: torch.Tensor,
                    has_location: torch.Tensor | None) -> torch.Tensor:
        """The loss with the activations of both passes."""
        activations = [self.activations[name] for name in self.layers]
        if not self.loss.needs_penalty(has_location):
            return self.loss(pred, label, activations, [a.detach() for a in activations], has_location)
        masked = replace_background(self.inputs.detach(), location, self.background)
        self._recording, self.activations = True, {}
        self.network(masked)
        self._recording = False
        return self.loss(pred, label, activations, [self.activations[name] for name in self.layers], has_location)


class AttentionMaskObjective(MaskGuidedObjective):
    """The objective of ``gain`` (:class:`spatialspec.losses.AttentionMaskLoss`): the Grad-CAM of ``layer``'s
    output in the trainer's forward pass against the location label.

    Args:
        network, loss, location_key, has_location_key, prefix: see :class:`MaskGuidedObjective`.
        layer: the module name whose output Grad-CAM explains (e.g. ``layer3`` of MONAI ResNet).

    Raises:
        ValueError: naming ``layer`` when it is not a module, or ``loss`` when of another kind.
    """

    def __init__(self, network: nn.Module, loss: AttentionMaskLoss, layer: str, location_key: str = "location",
                 has_location_key: str = "has_location", prefix: str = "guided") -> None:
        if not isinstance(loss, AttentionMaskLoss):
            raise ValueError(f"loss must be an AttentionMaskLoss, got {type(loss).__name__}")
        super().__init__(network, loss, [layer], False, location_key, has_location_key, prefix)

    def guided_loss(self, pred: torch.Tensor, label: torch.Tensor, location: torch.Tensor,
                    has_location: torch.Tensor | None) -> torch.Tensor:
        """The loss with the explained layer's output of the trainer's forward pass."""
        return self.loss(pred, label, self.activations[self.layers[0]], location, has_location)
