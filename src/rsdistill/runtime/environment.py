"""Versions and machine facts recorded with every run."""

from __future__ import annotations

import os
import platform
import random
from importlib import metadata
from pathlib import Path

import numpy as np
import torch


def cpu_name() -> str:
    """The processor's model name (``lscpu``'s "Model name"), or the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model name", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_load() -> float | None:
    """The 1-minute load average (runnable processes), or None where the OS has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def versions() -> dict:
    out = {"python": platform.python_version(), "platform": platform.platform(),
           "processor": cpu_name(), "cpu_threads": torch.get_num_threads()}
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
