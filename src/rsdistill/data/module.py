"""Everything a run needs from the data layer, resolved from one config section."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from rsdistill.data.augment import BatchAugment
from rsdistill.data.dataset import SceneDataset, load_dataset_sizes
from rsdistill.data.loader import Normalizer, TensorBatches
from rsdistill.data.mix import BatchMix, check_mix
from rsdistill.data.specs import DATASETS
from rsdistill.data.splits import Split, find_split_files, parse_fractions, split_from_files, stratified_split
from rsdistill.errors import ConfigError


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
    # Fixed per-channel mean/std of [0, 1] pixels that the model expects instead of
    # statistics of the data: a pretrained model's own (--pretrained imagenet fills them
    # in). Recorded here so --resume and evaluate feed the model the same way.
    input_mean: list[float] | None = None
    input_std: list[float] | None = None
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


def check_input_stats(cfg: DataConfig) -> None:
    """Fixed input statistics come as a pair of three positive-std channels and never
    with ``standardize``, which would replace them by the data's."""
    if cfg.input_mean is None and cfg.input_std is None:
        return
    if cfg.standardize:
        raise ConfigError("standardize replaces the fixed input statistics (input_mean/"
                          "input_std, e.g. those of --pretrained imagenet) by the data's; "
                          "drop --standardize")
    mean, std = cfg.input_mean or [], cfg.input_std or []
    if len(mean) != 3 or len(std) != 3 or not all(s > 0 for s in std):
        raise ConfigError(f"input_mean and input_std must be three numbers each (RGB), the "
                          f"std positive; got {cfg.input_mean!r} and {cfg.input_std!r}")


def with_input_stats(cfg: DataConfig, mean: list[float], std: list[float]) -> DataConfig:
    """``cfg`` feeding the model the fixed statistics ``mean``/``std``."""
    fixed = replace(cfg, input_mean=list(mean), input_std=list(std))
    check_input_stats(fixed)
    return fixed


def input_normalizer(cfg: DataConfig, train_images: torch.Tensor) -> Normalizer:
    """Fixed statistics if the config has them, else the training split's (standardize),
    else none (pixels in [0, 1])."""
    if cfg.input_mean is not None:
        return Normalizer(tuple(cfg.input_mean), tuple(cfg.input_std))
    return Normalizer.fit(train_images) if cfg.standardize else Normalizer()


def prepare_data(cfg: DataConfig, extra_sizes: tuple[int, ...] = (), progress: bool = True
                 ) -> PreparedData:
    check_mix(cfg.mix, cfg.mix_alpha)  # before any decoding
    check_input_stats(cfg)
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
        split = stratified_split(ds.labels, parse_fractions(cfg.split), cfg.split_seed)
    normalizer = input_normalizer(cfg, ds.images[split.train])
    augment = BatchAugment(hflip=cfg.hflip, vflip=cfg.vflip, rot90=cfg.rot90, crop=cfg.crop)
    return PreparedData(cfg, ds, split, normalizer, augment, views, BatchMix(cfg.mix, cfg.mix_alpha))
