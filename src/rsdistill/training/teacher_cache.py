"""The frozen teacher's logits for every view a training step can draw, computed once.

With flips and 90° rotations as the only augmentation (no crops, no mixing, the teacher
reading the student's draw) a training image has at most eight views, the dihedral
transforms of the square; the teacher is frozen, so its logits for each are fixed.
Computing them once, eight teacher passes over the training split, replaces a teacher
pass per batch and epoch: a 60-epoch student pays for 8 epochs of teacher passes instead
of 60. A step then looks its teacher logits up by image and view. The teacher runs as it
would in the step (eval mode, the same precision), one view of many images per batch.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Callable

import torch

from rsdistill.data.augment import AugmentParams, BatchAugment
from rsdistill.data.cache import read_cache
from rsdistill.data.loader import Normalizer
from rsdistill.io import atomic_torch_save, os_error_of

log = logging.getLogger(__name__)

VIEWS = 8
_BATCH = 128
# Bump when what a cached entry means changes, so old entries are recomputed.
CACHE_VERSION = 1
CACHE_SUBDIR = "teacher-logits"


def dihedral_index(params: AugmentParams) -> torch.Tensor:
    """Which of the eight views ``BatchAugment.apply`` makes of each image: ``4·h + k``
    for a horizontal flip ``h`` followed by ``k`` quarter turns.

    ``apply`` flips horizontally, then vertically, then rotates; a vertical flip is a
    horizontal flip followed by a half turn, so (h, v=1, k) is (1−h, k+2).
    """
    h = params.hflip.long()
    v = params.vflip.long()
    k = params.rot90.long()
    h = torch.where(v.bool(), 1 - h, h)
    k = torch.where(v.bool(), (k + 2) % 4, k)
    return 4 * h + k


def view_params(view: int, n: int) -> AugmentParams:
    """The augmentation draw that makes view ``view`` of ``n`` images (no crop)."""
    return AugmentParams(hflip=torch.full((n,), view >= 4), vflip=torch.zeros(n, dtype=torch.bool),
                         rot90=torch.full((n,), view % 4, dtype=torch.int64),
                         shift=torch.full((n, 2), 0.5))


def cacheable(augment: BatchAugment, mixing: bool, teacher_augment: str,
              uses_features: bool) -> str | None:
    """Why the teacher's outputs cannot be cached (``None``: they can)."""
    if augment.crop:
        return ("random crops give each image too many views (with the crop augmentation off, "
                "its outputs are computed once and cached)")
    if mixing:
        return "mixed images are new every batch"
    if teacher_augment != "same":
        return "the teacher's view has its own augmentation draw"
    if uses_features:
        return "a feature-based method reads the teacher's feature maps, not just its logits"
    return None


class TeacherLogitCache:
    """Logits of the teacher for (image, view), looked up per training step."""

    def __init__(self, logits: torch.Tensor, seconds: float) -> None:
        self.logits = logits  # VIEWS × N (every dataset row) × K, float32, on the CPU
        self.seconds = seconds

    @classmethod
    def build(cls, teacher: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
              rows: torch.Tensor, normalizer: Normalizer, augment: BatchAugment,
              prepare: Callable[[torch.Tensor], torch.Tensor], autocast) -> "TeacherLogitCache":
        """``teacher(x)`` on every view of ``images[rows]`` (the training split), each view
        made by ``augment.apply`` exactly as a step makes it; ``prepare`` moves a batch to
        the teacher's device and layout, ``autocast`` is the training precision's."""
        start = time.perf_counter()
        views = range(VIEWS) if augment.hflip or augment.vflip or augment.rot90 else range(1)
        out: torch.Tensor | None = None
        with torch.inference_mode():
            for view in views:
                for begin in range(0, rows.numel(), _BATCH):
                    idx = rows[begin:begin + _BATCH]
                    x = augment.apply(normalizer(images[idx]), view_params(view, idx.numel()))
                    with autocast():
                        logits = teacher(prepare(x)).float().cpu()
                    if out is None:
                        out = torch.full((VIEWS, images.shape[0], logits.shape[1]), float("nan"))
                    out[view, idx] = logits
        return cls(out, time.perf_counter() - start)

    def lookup(self, index: torch.Tensor, params: AugmentParams | None) -> torch.Tensor:
        view = dihedral_index(params) if params is not None else torch.zeros_like(index)
        return self.logits[view, index]


def cache_key(teacher_file: Path, parts: list[object]) -> str:
    """Names one teacher's logits for one set of views: the teacher's weights (the file's
    bytes), and everything that decides its inputs and arithmetic (``parts``)."""
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    with open(teacher_file, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    h.update(repr(parts).encode())
    return h.hexdigest()[:32]


def logits_problem(logits, images: int, classes: int, rows: torch.Tensor) -> str | None:
    """Why stored logits cannot be this teacher's for ``images`` dataset rows, or None.
    The file is named by a hash, but its content is only what the disk holds: a wrong
    shape used to end in an IndexError in the middle of training."""
    expected = (VIEWS, images, classes)
    if not isinstance(logits, torch.Tensor) or logits.dtype != torch.float32 \
            or tuple(logits.shape) != expected:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else "none"
        return f"its logits are {shape}, not float32 {expected}"
    if rows.numel() and not torch.isfinite(logits[0, rows]).all():
        return "it lacks logits of some training images"
    return None


def load_cached(folder: Path, key: str, images: int, classes: int, rows: torch.Tensor
                ) -> TeacherLogitCache | None:
    """A stored entry, or None (absent, unreadable or not of this shape: then it is
    computed again)."""
    def problem(entry) -> str | None:
        logits = entry.get("logits") if isinstance(entry, dict) else None
        return logits_problem(logits, images, classes, rows)

    entry = read_cache(Path(folder) / CACHE_SUBDIR / f"{key}.pt", problem,
                       what="teacher logits cache", redo="computing it again")
    return None if entry is None else TeacherLogitCache(entry["logits"], 0.0)


def store(folder: Path, key: str, cache: TeacherLogitCache) -> None:
    """Kept for the next run with the same teacher and views; a disk that refuses it only
    costs that run the teacher's pass again."""
    try:
        atomic_torch_save({"logits": cache.logits}, Path(folder) / CACHE_SUBDIR / f"{key}.pt")
    except Exception as exc:
        if os_error_of(exc) is None:
            raise
        log.info("teacher logits not kept (%s); the next run computes them again", exc)
