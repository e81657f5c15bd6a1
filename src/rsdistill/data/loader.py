"""Batches straight from the cached uint8 tensor: no per-image Python, no worker processes.

A whole training split of a scene dataset at 32 px fits in a few MB, so shuffling
indices and slicing the tensor is far faster than a DataLoader over PIL images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from rsdistill.data.augment import AugmentParams, BatchAugment
from rsdistill.data.mix import BatchMix


@dataclass(frozen=True)
class Normalizer:
    """uint8 -> float in [0, 1], then optional per-channel standardisation."""

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().div_(255.0)
        if self.mean is not None and self.std is not None:
            mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
            x = (x - mean) / std
        return x

    def to_dict(self) -> dict:
        return {"scale": "1/255", "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Normalizer":
        """Inverse of :meth:`to_dict` (a checkpoint's ``normalization`` entry)."""
        d = d or {}
        mean, std = d.get("mean"), d.get("std")
        return cls(tuple(mean) if mean is not None else None, tuple(std) if std is not None else None)

    @classmethod
    def fit(cls, images_uint8: torch.Tensor) -> "Normalizer":
        """Mean/std per channel from (training) images only."""
        x = images_uint8.double().div(255.0)
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
        return cls(tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist()))


@dataclass
class Batch:
    images: torch.Tensor  # float, normalised, augmented
    labels: torch.Tensor
    index: torch.Tensor  # dataset indices
    params: AugmentParams | None = None
    # Images in the whole (global) batch; differs from len(labels) on a shard of it.
    global_size: int | None = None
    # The same scenes at the teacher's resolution, augmented (and mixed) identically;
    # None when the teacher reads the student's view.
    teacher_images: torch.Tensor | None = None
    # Label distributions of mixed images (N×K); None without Mixup/CutMix.
    targets: torch.Tensor | None = None
    # The teacher's logits of these very views, when they come from a view bank
    # (data/recipes.py); None: the teacher runs on the batch.
    teacher_logits: torch.Tensor | None = None


class TensorBatches:
    """Iterate over ``images[indices]`` in (optionally shuffled, augmented) batches.

    All randomness comes from ``generator``; saving and restoring its state makes a
    resumed run see exactly the batches an uninterrupted one would.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor,
                 batch_size: int, normalizer: Normalizer, *, shuffle: bool = False,
                 augment: BatchAugment | None = None, generator: torch.Generator | None = None,
                 drop_last: bool = False, device: torch.device | str = "cpu",
                 shard: tuple[int, int] | None = None, mix: BatchMix | None = None,
                 teacher_images: torch.Tensor | None = None,
                 teacher_normalizer: Normalizer | None = None,
                 independent_teacher_augment: bool = False,
                 num_classes: int | None = None) -> None:
        self.images = images
        self.labels = labels
        self.indices = indices
        self.batch_size = int(batch_size)
        self.normalizer = normalizer
        self.shuffle = shuffle
        self.augment = augment if augment is not None and augment.enabled else None
        self.generator = generator or torch.Generator()
        self.drop_last = drop_last
        self.device = torch.device(device)
        # (rank, world size) under data parallelism: every rank draws the global batch's
        # order and augmentation from the same generator and keeps its slice of it.
        self.shard = shard if shard is not None and shard[1] > 1 else None
        self.mix = mix if mix is not None and mix.enabled else None
        if self.mix is not None and num_classes is None:
            raise ValueError("mixing needs num_classes for the mixed targets")
        if self.mix is not None and self.shard is not None:
            # The partner of an image may sit on another rank's shard.
            raise ValueError("Mixup/CutMix is not supported on a sharded (torchrun) batch")
        self.num_classes = num_classes
        self.teacher_images = teacher_images
        self.teacher_normalizer = teacher_normalizer or normalizer
        # The teacher's view gets its own flip/rotation/crop draw instead of the student's
        # (the ablation of consistent teaching; mixing still pairs the same images).
        self.independent_teacher_augment = independent_teacher_augment and teacher_images is not None

    def __len__(self) -> int:
        n = self.indices.numel()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self) -> torch.Tensor:
        if self.shuffle:
            return self.indices[torch.randperm(self.indices.numel(), generator=self.generator)]
        return self.indices

    def __iter__(self) -> Iterator[Batch]:
        if self.shard is not None:
            yield from self._iter_shard()
            return
        order = self.order()
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            params, teacher_params = self._sample(idx.numel())
            x, xt = self._views(idx, params, teacher_params)
            labels = self.labels[idx].to(self.device, non_blocking=True)
            targets = None
            if self.mix is not None:
                mp = self.mix.sample(idx.numel(), self.generator)
                x = self.mix.apply(x, mp)
                xt = self.mix.apply(xt, mp) if xt is not None else None
                targets = self.mix.targets(labels, self.num_classes, mp, tuple(x.shape[-2:]))
            yield Batch(x, labels, idx, params, teacher_images=xt, targets=targets)

    def _sample(self, n: int) -> tuple[AugmentParams | None, AugmentParams | None]:
        """Augmentation draws for the student's view and the teacher's (the same draw
        unless the teacher's view is augmented independently)."""
        if self.augment is None:
            return None, None
        params = self.augment.sample(n, self.generator)
        if self.independent_teacher_augment:
            return params, self.augment.sample(n, self.generator)
        return params, params

    def _views(self, idx: torch.Tensor, params: AugmentParams | None,
               teacher_params: AugmentParams | None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The student's images and the teacher's (``None`` without a teacher view),
        normalised and augmented with ``params`` and ``teacher_params``."""
        x = self.normalizer(self.images[idx].to(self.device, non_blocking=True))
        xt = None
        if self.teacher_images is not None:
            xt = self.teacher_normalizer(self.teacher_images[idx].to(self.device, non_blocking=True))
        if params is not None:
            x = self.augment.apply(x, params)
            xt = self.augment.apply(xt, teacher_params) if xt is not None else None
        return x, xt

    def _iter_shard(self) -> Iterator[Batch]:
        from rsdistill.runtime.distributed import shard_bounds

        order = self.order()
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            total = idx.numel()
            # Drawn for the whole global batch, exactly as a single process draws it.
            params, teacher_params = self._sample(total)
            start, end = shard_bounds(total, self.shard)
            idx = idx[start:end]
            params, teacher_params = (_rows(p, start, end) for p in (params, teacher_params))
            x, xt = self._views(idx, params, teacher_params)
            yield Batch(x, self.labels[idx].to(self.device, non_blocking=True), idx, params, total,
                        teacher_images=xt)


def _rows(params: AugmentParams | None, start: int, end: int) -> AugmentParams | None:
    """The draws of images ``start:end`` of a batch."""
    if params is None:
        return None
    return AugmentParams(*(t[start:end] for t in (params.hflip, params.vflip, params.rot90,
                                                  params.shift)))
