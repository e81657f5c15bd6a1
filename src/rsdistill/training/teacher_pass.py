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
from rsdistill.data.recipes import RecipeBatches
from rsdistill.errors import ConfigError
from rsdistill.runtime import distributed
from rsdistill.training.teacher_cache import (
    CACHE_SUBDIR,
    TeacherLogitCache,
    cache_key,
    cacheable,
    load_cached,
    store,
)
from rsdistill.training.view_bank import BANK_SUBDIR, ViewBank, build_bank, label_round

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
        self.bank: ViewBank | None = None
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
        """The view the teacher reads (``None`` when no member needs a teacher, or its
        logits are looked up: then the batches need no copy at the teacher's resolution,
        which cost a 128 px teacher's KD run 2–3× the time of its scratch twin)."""
        if not self.users or self.cache is not None:
            return None
        return self.view.key if self.view else self.data.view

    def outputs(self, x: torch.Tensor, batch=None
                ) -> tuple[torch.Tensor | None, list[torch.Tensor] | None]:
        """The teacher's logits and tapped feature maps for this batch, computed once for
        all members (``(None, None)`` when no member needs the teacher), or looked up."""
        users = self.users
        if not users:
            return None, None
        if batch is not None and batch.teacher_logits is not None:  # from the view bank
            return batch.teacher_logits.to(x.device), None
        if self.cache is not None and batch is not None:
            return self.cache.lookup(batch.index, batch.params).to(x.device), None
        # Through a member that taps features, if any: its hooks record them. The other
        # members' hooks on the same teacher see the same pass; they drop it in forward_train.
        runner = next((d for d in users if d.uses_features), users[0])
        with self.precision.autocast():
            return runner.teacher_outputs(x)

    def _teacher_input(self):
        """The teacher's images (uint8, every dataset row) and its normalisation."""
        view = self.view
        images = self.data.views[view.key].images if view else self.data.dataset.images
        return images, (view.normalizer if view else self.data.normalizer)

    def _key(self, extra: list[object]) -> str | None:
        """The cache entry's name (None: no teacher file, nothing is kept)."""
        if self.teacher_file is None:
            return None
        view = self.view
        return cache_key(self.teacher_file, [
            self.data.dataset.fingerprint, view.key if view else self.data.view,
            self._teacher_input()[1], self.data.split.train.tolist(), *extra,
            self.precision.name, str(self.precision.device), torch.__version__])

    def build_cache(self, cfg=None, progress: bool = False) -> None:
        """The teacher's logits of every view, once, when the views are finite; with
        ``cfg.teacher_cache == "bank"``, those of ``cfg.bank_rounds`` rounds of views."""
        users = self.users
        if not users:
            return
        if cfg is not None and cfg.teacher_cache == "bank":
            self.build_bank(cfg.bank_rounds, cfg.bank_seed, progress)
            return
        why_not = cacheable(self.data.augment, self.data.mix.enabled,
                            self.data.config.teacher_augment, any(d.uses_features for d in users))
        if why_not:
            log.info("teacher runs on every batch: %s", why_not)
            return
        runner = users[0]
        images, normalizer = self._teacher_input()
        a = self.data.augment
        key = self._key([(a.hflip, a.vflip, a.rot90)])
        if key is not None:
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

    def build_bank(self, rounds: int, seed: int, progress: bool) -> None:
        """The view bank: read from the cache, its missing rounds labelled by the teacher."""
        users = self.users
        if any(d.uses_features for d in users):
            raise ConfigError("--teacher-cache bank keeps the teacher's logits only; a "
                              "feature-based method reads its feature maps: use --teacher-cache "
                              "auto or off")
        if self.data.config.teacher_augment != "same":
            raise ConfigError("--teacher-cache bank labels the student's own views; drop "
                              "--teacher-augment independent")
        if distributed.is_distributed():
            raise ConfigError("--teacher-cache bank is not supported under torchrun yet")
        images, normalizer = self._teacher_input()
        a, m = self.data.augment, self.data.mix
        key = self._key(["bank", (a.hflip, a.vflip, a.rot90, a.crop, a.pad_fraction),
                         (m.mode, m.alpha, m.prob), seed])
        runner = users[0]

        def label(recipes, step):
            return label_round(lambda x: runner.teacher_outputs(x)[0], recipes, images,
                               normalizer, a, self.precision.prepare_input,
                               self.precision.autocast, step)

        self.bank = build_bank(self.cache_dir, key, rounds, seed, self.data.split.train, a, m,
                               label, progress)
        log.info("view bank: %d round(s) of %d views, %d read from %s, %d labelled by the "
                 "teacher in %.1fs", rounds, self.data.split.train.numel(),
                 rounds - self.bank.computed, self.cache_dir / BANK_SUBDIR, self.bank.computed,
                 self.bank.seconds)

    def bank_batches(self, epoch: int, batch_size: int, generator: torch.Generator,
                     device) -> RecipeBatches:
        """Epoch ``epoch``'s training batches: the bank's round ``epoch mod R``, shuffled
        by the run's own generator, with the teacher's stored logits."""
        r = self.bank.round_of(epoch)
        d = self.data
        return RecipeBatches(self.bank.recipes[r], self.bank.logits[r], d.dataset.images,
                             d.dataset.labels, batch_size, d.normalizer, d.augment, generator,
                             d.num_classes, d.mix.enabled, device)

    @property
    def cache_seconds(self) -> float | None:
        if self.bank is not None:
            return self.bank.seconds
        return self.cache.seconds if self.cache is not None else None
