"""The teacher the fused members share: checked once, run once per batch, or looked up.

Members of one training pass share one frozen teacher, its tapped layers and the view it
reads (a sweep shares method and layers), so its outputs are computed once per batch for
all of them; where the views are finite they are computed once for the whole run
(training/teacher_cache.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from rsdistill.data.module import PreparedData
from rsdistill.paths import default_cache_dir
from rsdistill.runtime.precision import Precision
from rsdistill.training.distiller import TeacherView, Trainable
from rsdistill.training.teacher_cache import (
    CACHE_SUBDIR,
    TeacherLogitCache,
    cache_key,
    cacheable,
    load_cached,
    store,
)

log = logging.getLogger(__name__)


class SharedTeacher:
    def __init__(self, distillers: list[Trainable], data: PreparedData,
                 precision: Precision, teacher_file: Path | None = None) -> None:
        if len({id(d.teacher) for d in distillers if d.teacher is not None}) > 1:
            raise ValueError("fused members must share one teacher")
        tapped = {d.teacher_layers for d in distillers if d.uses_features}
        if len(tapped) > 1:
            raise ValueError(f"fused members must tap the same teacher layers, got {sorted(tapped)}")
        views = {d.teacher_view for d in distillers if d.teacher is not None}
        if len(views) > 1:
            raise ValueError("fused members must share one teacher view")
        self.view: TeacherView | None = next(iter(views), None)
        self.distillers = distillers
        self.data = data
        self.precision = precision
        self.cache: TeacherLogitCache | None = None
        # The teacher's model file names its logits on disk, so the next run with the same
        # teacher and views reads them instead of computing them (None: never kept).
        self.teacher_file = Path(teacher_file) if teacher_file else None
        self.cache_dir = Path(data.config.cache_dir).expanduser() if data.config.cache_dir \
            else default_cache_dir()

    @property
    def users(self) -> list[Trainable]:
        """The distillers whose loss needs the teacher's outputs."""
        return [d for d in self.distillers if d.needs_teacher]

    def view_key(self):
        """The view the teacher reads (``None`` when no member needs a teacher)."""
        if not self.users:
            return None
        return self.view.key if self.view else self.data.view

    def outputs(self, x: torch.Tensor, batch=None
                ) -> tuple[torch.Tensor | None, list[torch.Tensor] | None]:
        """The teacher's logits and tapped feature maps for this batch, computed once for
        all members (``(None, None)`` when no member needs the teacher), or looked up."""
        users = self.users
        if not users:
            return None, None
        if self.cache is not None and batch is not None:
            return self.cache.lookup(batch.index, batch.params).to(x.device), None
        # Through a member that taps features, if any: its hooks record them. The other
        # members' hooks on the same teacher see the same pass; they drop it in forward_train.
        runner = next((d for d in users if d.uses_features), users[0])
        with self.precision.autocast():
            return runner.teacher_outputs(x)

    def build_cache(self) -> None:
        """The teacher's logits of every view, once, when the views are finite."""
        users = self.users
        if not users:
            return
        why_not = cacheable(self.data.augment, self.data.mix.enabled,
                            self.data.config.teacher_augment, any(d.uses_features for d in users))
        if why_not:
            log.info("teacher runs on every batch: %s", why_not)
            return
        view, runner = self.view, users[0]
        images = self.data.views[view.key].images if view else self.data.dataset.images
        normalizer = view.normalizer if view else self.data.normalizer
        key = None
        if self.teacher_file is not None:
            a = self.data.augment
            key = cache_key(self.teacher_file, [
                self.data.dataset.fingerprint, view.key if view else self.data.view,
                normalizer, self.data.split.train.tolist(), (a.hflip, a.vflip, a.rot90),
                self.precision.name, str(self.precision.device), torch.__version__])
            self.cache = load_cached(self.cache_dir, key, images.shape[0],
                                     self.data.num_classes, self.data.split.train)
            if self.cache is not None:
                log.info("teacher logits of every view read from %s", self.cache_dir / CACHE_SUBDIR)
                return
        self.cache = TeacherLogitCache.build(
            lambda x: runner.teacher_outputs(x)[0], images, self.data.split.train, normalizer,
            self.data.augment, self.precision.prepare_input, self.precision.autocast)
        log.info("teacher logits of every view of %d training images computed in %.1fs",
                 self.data.split.train.numel(), self.cache.seconds)
        if key is not None:
            store(self.cache_dir, key, self.cache)

    @property
    def cache_seconds(self) -> float | None:
        return self.cache.seconds if self.cache is not None else None
