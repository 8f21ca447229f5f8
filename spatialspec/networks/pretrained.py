"""ImageNet-pretrained initialisation from a local file only (Saab et al. 2022, App. A.1: the binary ResNet-50 and the
segmentation encoder start from ImageNet weights).

Nothing here downloads: a weights file is given by the user, read with ``torch.load(..., weights_only=True)`` (tensors
and plain containers only, never code) and checked key by key against the network, so a wrong file fails loudly
instead of leaving half the network at random initialisation.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

__all__ = ["check_pretrained", "read_state_dict", "adapt_first_conv", "load_pretrained", "cadene_senet_to_monai"]


def check_pretrained(pretrained: bool | str | os.PathLike | None) -> Path | None:
    """Validate a ``pretrained`` argument: ``False``/``None``/``""`` means random initialisation (returns ``None``),
    a path must name an existing file (returns it).

    Raises:
        ValueError: for ``True``: downloading weights is not supported; name a local file instead.
        FileNotFoundError: naming the missing file.
    """
    if pretrained is True:
        raise ValueError("pretrained=True would download ImageNet weights, which spatialspec never does: give the "
                         "path of a local weights file instead (e.g. se_resnext50_32x4d-a260b3a4.pth)")
    if pretrained is None or pretrained is False or pretrained == "":
        return None
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    return path


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a weights file into a flat ``name -> tensor`` dict.

    Accepts a bare state dict or a checkpoint holding one under ``state_dict`` or ``model``; a ``module.`` prefix
    (``DataParallel``) is removed.

    Raises:
        FileNotFoundError: naming the missing file.
        ValueError: naming the file when it cannot be read with ``weights_only=True`` or holds no state dict.
    """
    from spatialspec.embeddings.checkpoint import load_checkpoint_state  # loads monai.bundle: only when used

    path = check_pretrained(path)
    if path is None:
        raise ValueError("read_state_dict: a weights file path is required")
    content = load_checkpoint_state(path, "cpu", key=("state_dict", "model"))
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in content.items()}


def adapt_first_conv(weight: torch.Tensor, in_channels: int, name: str = "conv1.weight") -> torch.Tensor:
    """Fit an RGB first-convolution kernel (``out x 3 x ...``) to ``in_channels`` inputs.

    One input channel gets the sum over the RGB kernels (a grey image seen as equal R, G and B gives the same
    response), as segmentation-models-pytorch does; three are kept.

    Raises:
        ValueError: naming the weight for any other combination.
    """
    if weight.shape[1] == in_channels:
        return weight
    if weight.shape[1] == 3 and in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    raise ValueError(f"pretrained weight '{name}' expects {weight.shape[1]} input channels; cannot adapt it to "
                     f"in_channels={in_channels} (1 and 3 are supported)")


def load_pretrained(module: nn.Module, pretrained: bool | str | os.PathLike | None,
                    skip_prefixes: Sequence[str] = ("fc.", "last_linear."), first_conv: str | None = "conv1.weight",
                    convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None) -> nn.Module:
    """Load local pretrained weights into ``module`` (in place) and return it; ``pretrained`` falsy returns it as is.

    Every parameter and buffer of ``module`` (but ``num_batches_tracked`` and those under ``skip_prefixes``, the
    classification head, which keeps its random initialisation) must be in the file with its shape; the file may
    hold nothing else than those names and ``skip_prefixes`` ones.

    Args:
        module: the network, e.g. a MONAI ``ResNet`` (its names match torchvision's ResNet-50 file).
        pretrained: a weights file path, or ``False``/``None``.
        skip_prefixes: names left out on both sides.
        first_conv: the first convolution's weight name, fitted to the network's input channels
            (:func:`adapt_first_conv`); ``None`` leaves it as is.
        convert: maps the file's names to the module's (e.g. :func:`cadene_senet_to_monai`).

    Raises:
        ValueError: for ``pretrained=True`` (no downloads), an unreadable file, or names and shapes that do not
            match (naming the file and the first offending names).
        FileNotFoundError: naming a missing file.
    """
    path = check_pretrained(pretrained)
    if path is None:
        return module
    state = read_state_dict(path)
    if convert is not None:
        state = convert(state)
    own = module.state_dict()

    def kept(name: str) -> bool:
        return not name.startswith(tuple(skip_prefixes)) and not name.endswith("num_batches_tracked")

    state = {k: v for k, v in state.items() if kept(k)}
    if first_conv is not None and first_conv in state and first_conv in own:
        state[first_conv] = adapt_first_conv(state[first_conv], own[first_conv].shape[1], first_conv)
    missing = [k for k in own if kept(k) and k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(f"pretrained weights file {path} does not match {type(module).__name__}: "
                         f"{len(missing)} missing name(s) {missing[:5]}, {len(unexpected)} unexpected name(s) "
                         f"{unexpected[:5]}")
    wrong = [f"{k}: {tuple(v.shape)} in the file vs {tuple(own[k].shape)}" for k, v in state.items()
             if v.shape != own[k].shape]
    if wrong:
        raise ValueError(f"pretrained weights file {path} does not match {type(module).__name__}: {len(wrong)} "
                         f"shape mismatch(es), e.g. {wrong[:3]}")
    module.load_state_dict(state, strict=False)
    return module


# Cadene's pretrainedmodels SENet names (also segmentation-models-pytorch's encoders) -> MONAI's SENet names; the
# same mapping as monai.networks.nets.senet._load_state_dict, which only reads downloaded files.
_CADENE_RULES = (
    (re.compile(r"^(layer[1-4]\.\d+\.)(conv\d\.)(\w+)$"), r"\1\2conv.\3"),
    (re.compile(r"^(layer[1-4]\.\d+\.)bn(\d\.)(\w+)$"), r"\1conv\2adn.N.\3"),
    (re.compile(r"^(layer[1-4]\.\d+\.)se_module\.fc1\.(\w+)$"), r"\1se_layer.fc.0.\2"),
    (re.compile(r"^(layer[1-4]\.\d+\.)se_module\.fc2\.(\w+)$"), r"\1se_layer.fc.2.\2"),
    (re.compile(r"^(layer[1-4]\.\d+\.)downsample\.0\.(\w+)$"), r"\1project.conv.\2"),
    (re.compile(r"^(layer[1-4]\.\d+\.)downsample\.1\.(\w+)$"), r"\1project.adn.N.\2"),
)


def cadene_senet_to_monai(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a SENet state dict from Cadene's ``pretrainedmodels`` naming (the published ImageNet files, and the
    encoders of segmentation-models-pytorch) to MONAI's :class:`~monai.networks.nets.SENet` naming.

    The squeeze-and-excitation ``fc1``/``fc2`` are 1 x 1 convolutions there and linear layers in MONAI: their
    weights are reshaped to ``out x in``. Names already in MONAI's naming (and ``layer0.*``, shared) pass unchanged.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = key
        for pattern, repl in _CADENE_RULES:
            if pattern.match(key):
                new = pattern.sub(repl, key)
                if ".se_layer.fc." in new and new.endswith("weight") and value.ndim > 2:
                    value = value.reshape(value.shape[0], value.shape[1])
                break
        out[new] = value
    return out
