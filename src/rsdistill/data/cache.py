"""The decoded-tensor cache: its key, and reading and writing it without ever failing a run.

The cache only saves time, so nothing about it stops a load: an unreadable entry is
rebuilt, a folder that cannot be written (read-only, full disk) leaves the dataset
decoded in memory with one warning, and temporary files of writers that were killed
are removed on the next load.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Callable

import torch

from rsdistill.data import decode as decode_mod
from rsdistill.data.sources import ImageSource
from rsdistill.data.specs import DatasetSpec
from rsdistill.errors import WriteError
from rsdistill.paths import CACHE_ENV
from rsdistill.io import (
    atomic_torch_save, describe_os_error, load_failure_reason, os_error_of,
    remove_stale_temp_files,
)
from rsdistill.runtime.checkpoint import load_tensors_only

log = logging.getLogger(__name__)
_ENTRY_KEYS = {"images", "labels", "files", "classes", "skipped"}


def cache_key(spec: DatasetSpec, source: ImageSource, root: str, classes: list[str],
              files: list[str], skip_corrupt: bool) -> tuple[str, str]:
    """(fingerprint of the source's files, key of the cache entry)."""
    fingerprint = source.fingerprint(files)
    payload = json.dumps({
        "decode": decode_mod.DECODE_VERSION,
        "resample": decode_mod.RESAMPLE.name,
        "dataset": spec.name,
        "source": str(getattr(source, "path", getattr(source, "root", ""))),
        "root": root,
        "classes": classes,
        "fingerprint": fingerprint,
        "skip_corrupt": skip_corrupt,
    }, sort_keys=True)
    return fingerprint, hashlib.sha256(payload.encode()).hexdigest()[:16]


def cache_path_for(cache_dir: Path, name: str, size: int, key: str) -> Path:
    return Path(cache_dir) / f"{name}-{size}px-{key}.pt"


def clean_cache_dir(cache_dir: Path) -> None:
    removed = remove_stale_temp_files(Path(cache_dir))
    if removed:
        log.info("removed %d temporary file(s) that interrupted runs left in the cache %s",
                 len(removed), cache_dir)


def entry_problem(entry, size: int, classes: list[str], listed: int) -> str | None:
    """Why a loaded entry cannot be the cache of these ``listed`` files of ``classes`` at
    ``size`` px, or None. A file that loads is not yet trusted: a damaged or foreign one
    (fewer labels than images, a label past the classes, float images) used to end in an
    IndexError deep in training."""
    if not isinstance(entry, dict) or not _ENTRY_KEYS <= entry.keys():
        return "it is not a cache entry of this version"
    images, labels, files = entry["images"], entry["labels"], entry["files"]
    if not (isinstance(images, torch.Tensor) and images.dtype == torch.uint8
            and images.dim() == 4 and tuple(images.shape[1:]) == (3, size, size)):
        return f"its images are not uint8 3×{size}×{size}"
    n = images.shape[0]
    if not (isinstance(labels, torch.Tensor) and labels.dtype == torch.int64
            and tuple(labels.shape) == (n,)):
        return f"it does not hold one integer label for each of its {n} images"
    if n and not (0 <= int(labels.min()) and int(labels.max()) < len(classes)):
        return f"its labels are not all within the {len(classes)} classes"
    if list(entry["classes"]) != list(classes):
        return "its classes are not the dataset's"
    if not (isinstance(files, list) and len(files) == n and isinstance(entry["skipped"], list)
            and n + len(entry["skipped"]) == listed):
        return f"its file lists do not account for the {listed} files of the dataset"
    return None


def read_cache(path: Path, check: Callable[[object], str | None] | None = None, *,
               what: str = "cache", redo: str = "rebuilding it"):
    """The cached entry, or None when it is absent or unusable (then it is rebuilt):
    unreadable, or loaded but refused by ``check`` (which says why). An unusable one is
    named in one warning, ``<what> PATH is unusable (why); <redo>``. Every cache that
    only saves time (decoded images, the teacher's logits) is read through here."""
    try:
        entry = load_tensors_only(path)
    except FileNotFoundError:
        return None
    except Exception as exc:  # a damaged cache is rebuilt, never trusted
        _, reason = load_failure_reason(exc)
        log.warning("%s %s is unusable (%s); %s", what, path, reason, redo)
        return None
    problem = check(entry) if check is not None else None
    if problem is not None:
        log.warning("%s %s is unusable (%s); %s", what, path, problem, redo)
        return None
    return entry


def write_cache(path: Path, entry: dict) -> bool:
    """Write one entry atomically; False, with one warning, when the disk refuses it."""
    try:
        atomic_torch_save(entry, path)
    except (OSError, RuntimeError, WriteError) as exc:
        cause = os_error_of(exc)
        if cause is None:
            raise
        log.warning("warning: cannot write the cache %s (%s); the dataset is decoded in "
                    "memory and will be decoded again next time: point --cache-dir or %s "
                    "at a writable folder with free space", path, describe_os_error(cause),
                    CACHE_ENV)
        return False
    return True
