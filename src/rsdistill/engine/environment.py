"""Versions and machine facts recorded with every run."""

from __future__ import annotations

import platform
import random
from importlib import metadata

import numpy as np
import torch


def versions() -> dict:
    out = {"python": platform.python_version(), "platform": platform.platform(),
           "processor": platform.processor() or platform.machine(),
           "cpu_threads": torch.get_num_threads()}
    for pkg in ("rsdistill", "torch", "torchvision", "timm", "numpy", "Pillow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    out["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
    return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
