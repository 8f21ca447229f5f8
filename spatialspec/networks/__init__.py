"""Networks of the paper's real-data models (Saab et al. 2022, App. A.1), built from MONAI parts.

- :class:`SEResNeXtEncoder`: the SE-ResNeXt50 (32x4d) encoder of the segmentation and bounding-box UNet, registered
  at import with :class:`~monai.networks.nets.FlexibleUNet`'s encoder register as ``se_resnext50_32x4d``;
- :func:`load_pretrained`: ImageNet initialisation from a local file only (e.g. torchvision's ResNet-50 weights into
  MONAI's ``ResNet``), never downloaded.
"""

from __future__ import annotations

from .pretrained import adapt_first_conv, cadene_senet_to_monai, check_pretrained, load_pretrained, read_state_dict
from .se_resnext import SE_RESNEXT_BACKBONES, SEResNeXtEncoder, register_backbones

register_backbones()

__all__ = ["SEResNeXtEncoder", "SE_RESNEXT_BACKBONES", "register_backbones", "load_pretrained", "read_state_dict",
           "check_pretrained", "adapt_first_conv", "cadene_senet_to_monai"]
