"""SE-ResNeXt50 (32x4d) as a :class:`~monai.networks.nets.FlexibleUNet` encoder: the paper's segmentation and
bounding-box network is a UNet with this encoder (Saab et al. 2022, App. A.1; segmentation-models-pytorch's
``Unet("se_resnext50_32x4d")``), here built from MONAI's own SENet layers.

Importing :mod:`spatialspec.networks` registers the encoder under the backbone name ``se_resnext50_32x4d``, so a
bundle config (which imports ``spatialspec``) can write::

    network_def: {_target_: FlexibleUNet, backbone: se_resnext50_32x4d, in_channels: 1, out_channels: 2,
                  spatial_dims: 2, pretrained: false}

``pretrained`` is ``False`` or the path of a local ImageNet weights file (Cadene's ``se_resnext50_32x4d-a260b3a4.pth``,
an smp encoder state dict, or MONAI-named weights); nothing is ever downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from monai.networks.blocks import BaseEncoder
from monai.networks.nets import SEResNeXt50
from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE

from .pretrained import cadene_senet_to_monai, check_pretrained, load_pretrained

__all__ = ["SEResNeXtEncoder", "register_backbones", "SE_RESNEXT_BACKBONES"]

# backbone name -> (channels of the five feature maps, strides 2, 4, 8, 16, 32)
SE_RESNEXT_BACKBONES = {"se_resnext50_32x4d": (64, 256, 512, 1024, 2048)}


class SEResNeXtEncoder(SEResNeXt50, BaseEncoder):
    """SE-ResNeXt50 (32x4d) without its classification head, returning the five feature maps FlexibleUNet's decoder
    expects: the stem before max pooling (64 channels, stride 2) and the outputs of ``layer1`` to ``layer4`` (256,
    512, 1024, 2048 channels; strides 4, 8, 16, 32). Same layers and names as MONAI's
    :class:`~monai.networks.nets.SEResNeXt50` (Hu et al. 2018, Xie et al. 2017), App. A.1 of the paper.

    Args:
        spatial_dims: 2 (or 3; pretrained weights are 2-D only).
        in_channels: input channels; pretrained weights support 1 (grey: the RGB kernels summed) and 3.
        pretrained: ``False`` or a local weights file path. ``True`` raises ``ValueError`` (no downloads).
        layers, groups, reduction, inplanes, downsample_kernel_size, input_3x3: as
            :class:`~monai.networks.nets.SEResNeXt50` (the defaults are se_resnext50_32x4d).

    Raises:
        ValueError: for ``pretrained=True``, pretrained weights with ``spatial_dims`` other than 2, or a weights
            file that does not match (see :func:`spatialspec.networks.load_pretrained`).
        FileNotFoundError: naming a missing weights file.
    """

    backbone_names = tuple(SE_RESNEXT_BACKBONES)

    def __init__(self, spatial_dims: int = 2, in_channels: int = 3, pretrained: bool | str | os.PathLike = False,
                 layers: Sequence[int] = (3, 4, 6, 3), groups: int = 32, reduction: int = 16, inplanes: int = 64,
                 downsample_kernel_size: int = 1, input_3x3: bool = False) -> None:
        path = check_pretrained(pretrained)  # fail before building 25 M parameters
        if path is not None and spatial_dims != 2:
            raise ValueError(f"pretrained ImageNet weights are 2-D: spatial_dims must be 2, got {spatial_dims}")
        super().__init__(layers=layers, groups=groups, reduction=reduction, inplanes=inplanes,
                         downsample_kernel_size=downsample_kernel_size, input_3x3=input_3x3, pretrained=False,
                         spatial_dims=spatial_dims, in_channels=in_channels, num_classes=1)
        # an encoder: no pooling or classifier
        del self.last_linear, self.adaptive_avg_pool
        load_pretrained(self, path, skip_prefixes=("last_linear.",), first_conv="layer0.conv1.weight",
                        convert=cadene_senet_to_monai)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five feature maps, finest first (strides 2, 4, 8, 16, 32)."""
        stem = self.layer0[:-1](x)  # every layer0 module but the max pooling
        features = [stem]
        x = self.layer1(self.layer0.pool(stem))
        features.append(x)
        for layer in (self.layer2, self.layer3, self.layer4):
            x = layer(x)
            features.append(x)
        return features

    @classmethod
    def get_encoder_parameters(cls) -> list[dict]:
        """One parameter dict per backbone name (FlexibleUNet sets spatial_dims, in_channels and pretrained)."""
        return [{"spatial_dims": 2, "in_channels": 3, "pretrained": False} for _ in cls.backbone_names]

    @classmethod
    def num_channels_per_output(cls) -> list[tuple[int, ...]]:
        """Channels of the five feature maps, per backbone name."""
        return [SE_RESNEXT_BACKBONES[name] for name in cls.backbone_names]

    @classmethod
    def num_outputs(cls) -> list[int]:
        """Five feature maps per backbone."""
        return [5 for _ in cls.backbone_names]

    @classmethod
    def get_encoder_names(cls) -> list[str]:
        """The backbone names FlexibleUNet accepts: ``se_resnext50_32x4d``."""
        return list(cls.backbone_names)


def register_backbones() -> None:
    """Register :class:`SEResNeXtEncoder` with FlexibleUNet's encoder register (idempotent; done at import)."""
    FLEXUNET_BACKBONE.register_class(SEResNeXtEncoder)
