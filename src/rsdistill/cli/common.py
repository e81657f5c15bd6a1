"""Options shared by several subcommands."""

from __future__ import annotations

import argparse

from rsdistill.data.module import DataConfig
from rsdistill.data.specs import DATASETS


def add_data_args(p: argparse.ArgumentParser, dataset_required: bool = True) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", required=dataset_required, choices=DATASETS.names(),
                   help="dataset name (folder = any class-per-folder directory or zip)")
    g.add_argument("--data-root", help="folder holding the dataset archives or extracted folders "
                   "(default: $RSDISTILL_DATA, else ~/.cache/rsdistill/data); for --dataset "
                   "folder, the class-per-folder directory or zip itself")
    g.add_argument("--image-size", type=int, default=32, help="images are resized to N×N (default 32)")
    g.add_argument("--cache-dir", help="decoded-tensor cache (default: $RSDISTILL_CACHE, "
                   "else ~/.cache/rsdistill/cache)")
    g.add_argument("--allow-missing-classes", action="store_true",
                   help="use only the class folders found instead of failing")
    g.add_argument("--skip-corrupt", action="store_true", help="leave undecodable images out")
    g.add_argument("--download", action="store_true", help="download the archive if missing")
    g.add_argument("--split", default="60/20/20", help="train/val/test fractions (default 60/20/20)")
    g.add_argument("--split-seed", type=int, default=0, help="seed of the stratified split")
    g.add_argument("--split-dir", help="folder with <name>-train.txt/-val.txt/-test.txt split files")
    g.add_argument("--standardize", action="store_true",
                   help="per-channel mean/std standardisation (statistics of the training split)")
    for flag in ("hflip", "vflip", "rot90", "crop"):
        g.add_argument(f"--no-{flag}", dest=flag, action="store_false",
                       help=f"disable the {flag} training augmentation")
    g.add_argument("--workers", type=int, help="processes for the first decode (default: cores)")


def data_config(args: argparse.Namespace) -> DataConfig:
    return DataConfig(
        dataset=args.dataset, data_root=args.data_root, image_size=args.image_size,
        cache_dir=args.cache_dir, allow_missing_classes=args.allow_missing_classes,
        skip_corrupt=args.skip_corrupt, download=args.download, split=args.split,
        split_seed=args.split_seed, split_dir=args.split_dir, standardize=args.standardize,
        hflip=args.hflip, vflip=args.vflip, rot90=args.rot90, crop=args.crop,
        workers=args.workers,
    )
