"""Everything a run needs from the data layer, resolved from one config section."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from rsdistill.data.augment import BatchAugment
from rsdistill.data.dataset import SceneDataset, load_dataset_sizes
from rsdistill.data.loader import Normalizer, TensorBatches
from rsdistill.data.mix import BatchMix, check_mix
from rsdistill.data.specs import DATASETS
from rsdistill.data.splits import (
    Split, find_split_files, parse_fractions, split_from_files, split_problem, stratified_split,
    suggest_fractions,
)
from rsdistill.errors import ConfigError, DataError

log = logging.getLogger(__name__)


# How the teacher's view of a training batch is augmented relative to the student's.
TEACHER_AUGMENT = ("same", "independent")


@dataclass
class DataConfig:
    dataset: str = "ucmerced"
    data_root: str | None = None
    image_size: int = 32
    cache_dir: str | None = None
    allow_missing_classes: bool = False
    skip_corrupt: bool = False
    download: bool = False
    split: str = "60/20/20"
    split_seed: int = 0
    split_dir: str | None = None
    standardize: bool = False
    hflip: bool = True
    vflip: bool = True
    rot90: bool = True
    crop: bool = True
    # Mixup/CutMix of training batches ("none", "mixup", "cutmix") and its Beta(a, a).
    mix: str = "none"
    mix_alpha: float = 1.0
    # Distillation only: "same" feeds the teacher exactly the student's augmented view
    # (consistent teaching); "independent" gives the teacher's view its own draw.
    teacher_augment: str = "same"
    workers: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PreparedData:
    config: DataConfig
    dataset: SceneDataset
    split: Split
    normalizer: Normalizer
    augment: BatchAugment
    views: dict[int, SceneDataset] = field(default_factory=dict)
    mix: BatchMix = field(default_factory=BatchMix)

    @property
    def classes(self) -> list[str]:
        return self.dataset.classes

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    def batches(self, split: str, batch_size: int, *, train: bool = False,
                generator: torch.Generator | None = None,
                device: torch.device | str = "cpu",
                shard: tuple[int, int] | None = None,
                teacher_size: int | None = None,
                teacher_normalizer: Normalizer | None = None) -> TensorBatches:
        """Training batches are shuffled, augmented and mixed; evaluation batches never are.

        ``teacher_size``: the batches feed a teacher that reads this resolution. At
        another size than the student's, each batch also carries the same scenes at that
        resolution (cross-resolution distillation; the size must have been prepared with
        ``prepare_data(..., extra_sizes)``). They are augmented identically, or, with
        ``teacher_augment: independent``, each with its own draw (then a teacher at the
        student's size gets its own view too).
        """
        teacher_images = None
        independent = train and teacher_size is not None and \
            self.config.teacher_augment == "independent"
        if teacher_size is not None and teacher_size != self.dataset.image_size:
            if teacher_size not in self.views:
                raise ValueError(f"no {teacher_size} px view was prepared (have {sorted(self.views)})")
            teacher_images = self.views[teacher_size].images
        elif independent:
            teacher_images = self.dataset.images
        return TensorBatches(
            self.dataset.images, self.dataset.labels, self.split[split], batch_size,
            self.normalizer, shuffle=train, augment=self.augment if train else None,
            generator=generator, device=device, shard=shard,
            mix=self.mix if train else None, num_classes=self.num_classes,
            teacher_images=teacher_images, teacher_normalizer=teacher_normalizer,
            independent_teacher_augment=independent,
        )

    def describe(self) -> dict:
        return {
            "dataset": self.dataset.name,
            "classes": self.classes,
            "counts": self.dataset.counts(),
            "total": len(self.dataset),
            "splits": self.split.sizes(),
            "image_size": self.dataset.image_size,
            "cache_path": str(self.dataset.cache_path) if self.dataset.cache_path else None,
            "source": self.dataset.source,
            "skipped_corrupt": len(self.dataset.skipped),
            "missing_classes": self.dataset.missing_classes,
            "normalization": self.normalizer.to_dict(),
        }


def prepare_data(cfg: DataConfig, extra_sizes: tuple[int, ...] = (), progress: bool = True,
                 check_splits: bool = True) -> PreparedData:
    """The data of a run. ``check_splits``: a split unusable for training (a class missing
    from one, fewer than two classes) is an error; else only a warning (``data info``)."""
    check_mix(cfg.mix, cfg.mix_alpha)  # before any decoding
    if cfg.teacher_augment not in TEACHER_AUGMENT:
        raise ConfigError(f"--teacher-augment must be one of {', '.join(TEACHER_AUGMENT)}, "
                          f"got {cfg.teacher_augment!r}")
    sizes = tuple(dict.fromkeys((cfg.image_size, *extra_sizes)))
    views = load_dataset_sizes(
        cfg.dataset, cfg.data_root, sizes, cache_dir=cfg.cache_dir,
        allow_missing_classes=cfg.allow_missing_classes, skip_corrupt=cfg.skip_corrupt,
        download=cfg.download, workers=cfg.workers, progress=progress,
    )
    ds = views[cfg.image_size]
    if cfg.split_dir:
        spec = DATASETS.get(cfg.dataset)
        names = tuple(dict.fromkeys((*spec.split_names, cfg.dataset)))
        split = split_from_files(ds.files, find_split_files(Path(cfg.split_dir), names))
    else:
        fractions = parse_fractions(cfg.split)
        split = stratified_split(ds.labels, fractions, cfg.split_seed)
    _check_split(cfg, ds, split, strict=check_splits)
    normalizer = Normalizer.fit(ds.images[split.train]) if cfg.standardize else Normalizer()
    augment = BatchAugment(hflip=cfg.hflip, vflip=cfg.vflip, rot90=cfg.rot90, crop=cfg.crop)
    return PreparedData(cfg, ds, split, normalizer, augment, views, BatchMix(cfg.mix, cfg.mix_alpha))


def _check_split(cfg: DataConfig, ds: SceneDataset, split: Split, strict: bool) -> None:
    allow_empty_val = bool(cfg.split_dir) or parse_fractions(cfg.split)[1] == 0
    problem = split_problem(split, ds.labels, ds.classes, allow_empty_val)
    if problem is None:
        return
    if len(ds.classes) < 2:
        message = f"{problem}: add a folder of images for each other class"
    else:
        sizes = "/".join(str(n) for n in split.sizes().values())
        how = (f"split files in {cfg.split_dir}" if cfg.split_dir
               else f"--split-fractions {cfg.split}")
        hint = ("list images of every class in each split file" if cfg.split_dir
                else suggest_fractions(ds.labels, ds.num_classes, cfg.split_seed))
        message = (f"{problem} (train/val/test {sizes} images, {how}); every class needs an "
                   f"image in each split: {hint}")
    if strict:
        raise DataError(f"cannot train on this data: {message}")
    log.warning("warning: cannot train on this data: %s", message)
