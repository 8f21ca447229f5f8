"""A segmentation network's pixel embeddings, read with a forward hook: by default the decoder's last feature map
before the segmentation head, the embedding layer of both Seg-SSL and Seg-SPL (Saab et al. 2022, Sec. 4.2.1 and
4.2.2).

Which layer, and why:

* MONAI ``UNet`` (the CPU-sized network of the bundles) is ``model = Sequential(down, SkipConnection(...), up)``; its
  top up-sampling block ``model[-1]`` maps straight to ``out_channels`` (a transposed convolution to 2 channels,
  then the final convolution), so no full-resolution map with more than 2 channels exists. The last feature map
  before the head is therefore the *input* of ``model[-1]``: the last decoder feature map concatenated with the
  top encoder skip, ``2 * channels[0]`` channels at half the image resolution (32 x 20 x 20 for the bundles'
  UNet on 40 x 40 images).
* MONAI ``FlexibleUNet`` (the paper-scale SE-ResNeXt50 UNet) has a ``segmentation_head``; its input is the
  decoder's last, full-resolution feature map.

Another layer can be named with ``layer`` (a name from ``network.named_modules()``); ``capture="output"`` reads that
module's output instead of its input.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["default_feature_layer", "FeatureMapHook"]


def default_feature_layer(network: nn.Module) -> str:
    """The name of the module whose *input* is the decoder's last feature map before the head (see the module doc):
    ``segmentation_head`` for MONAI ``FlexibleUNet``, ``model.<last>`` for MONAI ``UNet``; inside a
    ``DistributedDataParallel`` / ``DataParallel`` wrapper (the DDP config), the wrapped network's, as
    ``module.<name>``.

    Raises:
        ValueError: naming the network's class when it has neither structure (pass ``layer`` explicitly then).
    """
    if isinstance(network, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return "module." + default_feature_layer(network.module)
    if isinstance(getattr(network, "segmentation_head", None), nn.Module):
        return "segmentation_head"
    model = getattr(network, "model", None)
    if isinstance(model, nn.Sequential) and len(model) > 0:
        return f"model.{len(model) - 1}"
    raise ValueError(f"no default feature layer for a {type(network).__name__}: pass layer=<module name> (one of "
                     "network.named_modules())")


class FeatureMapHook:
    """Keep the feature map one layer of ``network`` saw (or produced) in its latest forward pass.

    Args:
        network: the segmentation network.
        layer: a module name of ``network.named_modules()``; ``None`` gives :func:`default_feature_layer`.
        capture: ``"input"`` (a forward pre-hook: the tensor entering the layer) or ``"output"``.

    Raises:
        ValueError: naming ``layer`` when the network has no such module, or ``capture`` when invalid.

    Example:
        >>> from monai.networks.nets import UNet
        >>> net = UNet(2, 1, 2, channels=(16, 32, 64), strides=(2, 2), num_res_units=1)
        >>> hook = FeatureMapHook(net)
        >>> _ = net(torch.zeros(2, 1, 40, 40))
        >>> tuple(hook.pop().shape)
        (2, 32, 20, 20)
    """

    def __init__(self, network: nn.Module, layer: str | None = None, capture: str = "input") -> None:
        if capture not in ("input", "output"):
            raise ValueError(f"capture must be 'input' or 'output', got {capture!r}")
        self.layer = default_feature_layer(network) if layer is None else str(layer)
        modules = dict(network.named_modules())
        if self.layer not in modules:
            names = [name for name in modules if name][:12]
            raise ValueError(f"layer {self.layer!r} is not a module of the {type(network).__name__} (e.g. {names})")
        self.capture = capture
        self.features: torch.Tensor | None = None
        module = modules[self.layer]
        if capture == "input":
            self._handle = module.register_forward_pre_hook(self._keep_input)
        else:
            self._handle = module.register_forward_hook(self._keep_output)

    def _keep_input(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self.features = args[0]

    def _keep_output(self, module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
        self.features = output

    def pop(self) -> torch.Tensor:
        """The feature map of the latest forward pass (``B x D x spatial...``); the hook forgets it.

        Raises:
            RuntimeError: if no forward pass went through the layer since the last ``pop``.
        """
        if self.features is None:
            raise RuntimeError(f"FeatureMapHook: no forward pass through {self.layer!r} since the last pop()")
        features, self.features = self.features, None
        return features

    def remove(self) -> None:
        """Detach the hook from the network."""
        self._handle.remove()
        self.features = None
