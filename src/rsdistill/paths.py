"""Where rsdistill keeps data and caches by default (environment first, then ~/.cache)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "RSDISTILL_DATA"
CACHE_ENV = "RSDISTILL_CACHE"


def default_data_root() -> Path:
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rsdistill" / "data"


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rsdistill" / "cache"
