"""Networks of the paper's real-data models (Saab et al. 2022, App. A.1), built from MONAI parts, and what reads them.

- :class:`SEResNeXtEncoder`: the SE-ResNeXt50 (32x4d) encoder of the segmentation and bounding-box UNet, registered
  at import with :class:`~monai.networks.nets.FlexibleUNet`'s encoder register as ``se_resnext50_32x4d``;
- :func:`load_pretrained`: ImageNet initialisation from a local file only (e.g. torchvision's ResNet-50 weights into
  MONAI's ``ResNet``), never downloaded;
- :class:`FeatureMapHook`, :func:`default_feature_layer`: a segmentation network's pixel embeddings (the decoder's
  last feature map before the head), read by the objectives of Seg-SSL and Seg-SPL (Sec. 4.2).
"""

from __future__ import annotations

from .feature_map import FeatureMapHook, default_feature_layer
from .prepare import prepare_network
from .pretrained import adapt_first_conv, cadene_senet_to_monai, check_pretrained, load_pretrained, read_state_dict
from .se_resnext import SE_RESNEXT_BACKBONES, SEResNeXtEncoder, register_backbones

register_backbones()

__all__ = ["prepare_network", "SEResNeXtEncoder", "SE_RESNEXT_BACKBONES", "register_backbones", "load_pretrained",
           "read_state_dict",
           "check_pretrained", "adapt_first_conv", "cadene_senet_to_monai", "FeatureMapHook", "default_feature_layer"]
