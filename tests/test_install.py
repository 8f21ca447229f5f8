"""The environment scripts/install.sh builds: the pinned CPU torch, no CUDA packages, the console script."""

from __future__ import annotations

import importlib.metadata as md
import shutil
import sys
from pathlib import Path

import torch


def test_torch_is_the_pinned_cpu_build():
    assert torch.__version__.split("+")[0] == "2.13.0"
    assert not torch.version.cuda


def test_no_cuda_packages_installed():
    names = {(dist.metadata["Name"] or "").lower() for dist in md.distributions()}
    cuda = sorted(n for n in names if n.startswith("nvidia-") or n in ("triton", "pytorch-triton"))
    assert cuda == []


def test_console_script_installed():
    assert shutil.which("spatialspec", path=str(Path(sys.executable).parent)) is not None
