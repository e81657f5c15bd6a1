"""Everything a run needs from the data layer, resolved from one config section."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from rsdistill.config import option
from rsdistill.data.augment import BatchAugment
from rsdistill.data.dataset import SceneDataset, load_dataset_sizes
from rsdistill.data.loader import Normalizer, TensorBatches
from rsdistill.data.mix import MIX_MODES, BatchMix, check_mix
from rsdistill.data.specs import DATASETS
from rsdistill.data.transfer import load_transfer, refuse_test_images, with_transfer
from rsdistill.data.views import ViewKey, resize_uint8, upsampled_view, view_key
from rsdistill.data.splits import (
    Split, find_split_files, parse_fractions, split_from_files, split_problem, stratified_split,
    suggest_fractions,
)
from rsdistill.errors import ConfigError, DataError

log = logging.getLogger(__name__)


# How the teacher's view of a training batch is augmented relative to the student's.
TEACHER_AUGMENT = ("same", "independent")
# What a teacher of another resolution reads: its own view of the scene at its size, or the
# student's view upsampled to its size (resolution-consistent teaching).
TEACHER_VIEWS = ("own", "upsampled")


@dataclass
class DataConfig:
    """The data section; each field that is an option declares its flag and help here
    (``rsdistill.config.option``), so its default is written once. Options of scope
    "training" only change how a model is trained (not offered by export, evaluate, ...);
    those of scope "distill" only how a student is taught."""

    dataset: str = option("ucmerced", choices=DATASETS.names,
                          help="dataset name (folder = any class-per-folder directory or zip)")
    data_root: str | None = option(
        None, shown="$RSDISTILL_DATA, else ~/.cache/rsdistill/data",
        help="folder holding the dataset archives or extracted folders; for --dataset "
             "folder, the class-per-folder directory or zip itself")
    image_size: int = option(32, help="images are resized to N×N")
    cache_dir: str | None = option(None, shown="$RSDISTILL_CACHE, else ~/.cache/rsdistill/cache",
                                   help="decoded-tensor cache")
    allow_missing_classes: bool = option(False, help="use only the class folders found "
                                         "instead of failing")
    skip_corrupt: bool = option(False, help="leave undecodable images out (reported)")
    download: bool = option(False, help="download the archive into the data root if it is "
                            "missing (checked with its md5)")
    split: str = option("60/20/20", flag="--split-fractions", help="train/val/test fractions")
    split_seed: int = option(0, help="seed of the stratified split")
    split_dir: str | None = option(None, shown="a stratified split by --split-fractions",
                                   help="folder with <name>-train.txt/-val.txt/-test.txt "
                                        "split files")
    standardize: bool = option(False, help="per-channel mean/std standardisation "
                               "(statistics of the training split)")
    # Fixed per-channel mean/std of [0, 1] pixels that the model expects instead of
    # statistics of the data: a pretrained model's own (--pretrained imagenet fills them
    # in). Recorded here so --resume and evaluate feed the model the same way.
    input_mean: list[float] | None = None
    input_std: list[float] | None = None
    hflip: bool = option(True, scope="training", help="disable the hflip training augmentation")
    vflip: bool = option(True, scope="training", help="disable the vflip training augmentation")
    rot90: bool = option(True, scope="training", help="disable the rot90 training augmentation")
    crop: bool = option(True, scope="training", help="disable the crop training augmentation")
    # Reflect padding of the random crop as a fraction of the side: the largest shift
    # (0.125 = 4 px at 32 px, the CIFAR recipe; 0.0625 is milder).
    crop_pad: float = option(0.125, scope="training", shown="0.125 = 4 px at 32 px; 0.0625 is "
                             "milder", help="random crop strength: reflect padding as a "
                             "fraction of the side, the largest shift")
    # Mixup/CutMix of training batches ("none", "mixup", "cutmix") and its Beta(a, a).
    mix: str = option("none", scope="training", choices=MIX_MODES,
                      help="mix training batches: mixup or cutmix; with a teacher at --alpha 1 "
                           "the target is the teacher's prediction on the mixed image "
                           "(function matching)")
    mix_alpha: float = option(1.0, scope="training", help="Beta(a, a) of the mixing weight")
    # Share of the training images that get a mixing partner (the rest stay whole).
    mix_prob: float = option(1.0, scope="training", shown="1.0; 0.5 is milder for small inputs",
                             help="share of training images that get a mixing partner, the "
                                  "rest stay whole")
    # Distillation only: "same" feeds the teacher exactly the student's augmented view
    # (consistent teaching); "independent" gives the teacher's view its own draw.
    teacher_augment: str = option(
        "same", scope="distill", choices=TEACHER_AUGMENT,
        help="same: the teacher sees exactly the student's augmented view (consistent "
             "teaching); independent: the teacher's view gets its own flip, rotation and crop")
    # Distillation only: "own" (the teacher reads the scene at its own resolution) or
    # "upsampled" (it reads the student's view, upsampled to its input size).
    teacher_view: str = option(
        "own", scope="distill", choices=TEACHER_VIEWS,
        help="own: a teacher of another resolution reads the scene at its own size; "
             "upsampled: it reads the student's view upsampled to its input size "
             "(resolution-consistent teaching)")
    # The model reads image_size px made from images first reduced to source_size px
    # (bicubic both ways); None = images decoded straight to image_size. A teacher
    # fine-tuned on what a low-resolution student sees.
    source_size: int | None = option(
        None, shown="decode straight to --image-size",
        help="reduce every image to N×N first, then resize it (bicubic) to --image-size: "
             "e.g. a teacher fine-tuned on what a 32 px student sees")
    workers: int | None = option(None, shown="cores", help="processes for the first decode")
    # Unlabelled images the teacher labels for the student (data/transfer.py): a folder or
    # zip (class-per-folder or flat) or a dataset name; at most transfer_limit of them.
    transfer_set: str | None = option(
        None, scope="distill", metavar="PATH|DATASET", shown="none",
        help="unlabelled images the teacher labels and the student learns from (soft "
             "targets only): a folder or zip, class-per-folder or flat, or a dataset name "
             "read from --data-root, e.g. aid; refused if one is an image of the test split")
    transfer_limit: int | None = option(None, scope="distill", shown="all",
                                        help="use a fixed random subset of this many "
                                             "transfer images")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PreparedData:
    config: DataConfig
    dataset: SceneDataset
    split: Split
    normalizer: Normalizer
    augment: BatchAugment
    # Every view prepared, by (size, source): the run's own and its teacher's.
    views: dict[ViewKey, SceneDataset] = field(default_factory=dict)
    mix: BatchMix = field(default_factory=BatchMix)

    @property
    def classes(self) -> list[str]:
        return self.dataset.classes

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    @property
    def view(self) -> ViewKey:
        """The view the run's own model reads."""
        return view_key(self.config.image_size, self.config.source_size)

    def batches(self, split: str, batch_size: int, *, train: bool = False,
                generator: torch.Generator | None = None,
                device: torch.device | str = "cpu",
                shard: tuple[int, int] | None = None,
                teacher_view: ViewKey | None = None,
                teacher_normalizer: Normalizer | None = None) -> TensorBatches:
        """Training batches are shuffled, augmented and mixed; evaluation batches never are.

        ``teacher_view``: the batches feed a teacher that reads this view. When it is not
        the student's own, each batch also carries the same scenes in that view
        (cross-resolution distillation; it must have been prepared with
        ``prepare_data(..., extra_views)``). They are augmented identically, or, with
        ``teacher_augment: independent``, each with its own draw (then a teacher of the
        student's view gets its own copy too).
        """
        teacher_images = None
        independent = train and teacher_view is not None and \
            self.config.teacher_augment == "independent"
        # The teacher needs its own copy of the batch when it reads another view, or the
        # same images under another normalisation (e.g. a pretrained teacher's statistics).
        other_norm = teacher_normalizer is not None and teacher_normalizer != self.normalizer
        if teacher_view is not None and (teacher_view != self.view or other_norm):
            if teacher_view not in self.views:
                raise ValueError(f"no {teacher_view} view was prepared (have {sorted(self.views)})")
            teacher_images = self.views[teacher_view].images
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
            "source_size": self.config.source_size,
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


def check_data_config(cfg: DataConfig) -> None:
    """The data options that need no decoding, checked before anything is read."""
    check_mix(cfg.mix, cfg.mix_alpha, cfg.mix_prob)
    if not (math.isfinite(cfg.crop_pad) and 0.0 <= cfg.crop_pad <= 0.5):
        raise ConfigError(f"--crop-pad must be a fraction of the side in [0, 0.5] (the largest "
                          f"crop shift), got {cfg.crop_pad!r}")
    for name, allowed in (("teacher_augment", TEACHER_AUGMENT), ("teacher_view", TEACHER_VIEWS)):
        if getattr(cfg, name) not in allowed:
            raise ConfigError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, "
                              f"got {getattr(cfg, name)!r}")
    if cfg.transfer_limit is not None and cfg.transfer_limit < 1:
        raise ConfigError(f"--transfer-limit must be >= 1, got {cfg.transfer_limit}")
    if cfg.source_size is not None:
        if cfg.source_size < 1:
            raise ConfigError(f"--source-size must be >= 1, got {cfg.source_size}")
        view_key(cfg.image_size, cfg.source_size)


def prepare_data(cfg: DataConfig, extra_views: tuple[ViewKey, ...] = (), progress: bool = True,
                 check_splits: bool = True) -> PreparedData:
    """The data of a run and the ``extra_views`` its teacher reads. ``check_splits``: a
    split unusable for training (a class missing from one, fewer than two classes) is an
    error; else only a warning (``data info``)."""
    check_data_config(cfg)  # before any decoding
    check_input_stats(cfg)
    keys = tuple(dict.fromkeys(view_key(*v) for v in
                               ((cfg.image_size, cfg.source_size), *extra_views)))
    # Each view is decoded at its source size (its own size when it has none).
    sizes = tuple(dict.fromkeys(src or size for size, src in keys))
    decoded = load_dataset_sizes(
        cfg.dataset, cfg.data_root, sizes,
        cache_dir=cfg.cache_dir, allow_missing_classes=cfg.allow_missing_classes,
        skip_corrupt=cfg.skip_corrupt, download=cfg.download, workers=cfg.workers,
        progress=progress,
    )
    views = {(size, src): decoded[size] if src is None else upsampled_view(decoded[src], size)
             for size, src in keys}
    ds = views[keys[0]]
    if cfg.split_dir:
        spec = DATASETS.get(cfg.dataset)
        names = tuple(dict.fromkeys((*spec.split_names, cfg.dataset)))
        split = split_from_files(ds.files, find_split_files(Path(cfg.split_dir), names))
    else:
        fractions = parse_fractions(cfg.split)
        split = stratified_split(ds.labels, fractions, cfg.split_seed)
    _check_split(cfg, ds, split, strict=check_splits)
    normalizer = input_normalizer(cfg, ds.images[split.train])
    if cfg.transfer_set:
        views, split = _add_transfer(cfg, views, keys, sizes, split, progress)
        ds = views[keys[0]]
    augment = BatchAugment(hflip=cfg.hflip, vflip=cfg.vflip, rot90=cfg.rot90, crop=cfg.crop,
                           pad_fraction=cfg.crop_pad)
    return PreparedData(cfg, ds, split, normalizer, augment, views,
                        BatchMix(cfg.mix, cfg.mix_alpha, cfg.mix_prob))


def _add_transfer(cfg: DataConfig, views: dict, keys: tuple, sizes: tuple, split: Split,
                  progress: bool):
    """Every view with the transfer set appended (unlabelled) and the training split with
    its images; refused if one of them is an image of the test split."""
    transfer = load_transfer(cfg.transfer_set, cfg.data_root, sizes, cache_dir=cfg.cache_dir,
                             workers=cfg.workers, progress=progress, limit=cfg.transfer_limit,
                             skip_corrupt=cfg.skip_corrupt)
    at = {(s, src): transfer.images[s] if src is None else resize_uint8(transfer.images[src], s)
          for s, src in views}
    student = views[keys[0]]
    refuse_test_images(transfer, keys[0][0], at[keys[0]], student.images[split.test],
                       [student.files[i] for i in split.test.tolist()])
    n, extra = len(student), len(transfer)
    log.info("transfer set: %d unlabelled image(s) from %s join the training split",
             extra, transfer.where)
    grown = {key: with_transfer(ds, at[key], transfer.fingerprint) for key, ds in views.items()}
    train = torch.cat([split.train, torch.arange(n, n + extra)])
    return grown, Split(train, split.val, split.test)


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
