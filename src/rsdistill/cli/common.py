"""Options shared by several subcommands."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from rsdistill.data.mix import MIX_MODES
from rsdistill.data.module import TEACHER_AUGMENT, TEACHER_VIEWS, DataConfig
from rsdistill.data.specs import DATASETS
from rsdistill.errors import ConfigError
from rsdistill.experiments.locate import run_dir

log = logging.getLogger(__name__)

_D = DataConfig()


def add_data_args(p: argparse.ArgumentParser, dataset_required: bool = True,
                  student: bool = False, training: bool = True) -> None:
    # Every default is None, meaning "not given": data_config() fills in DataConfig's
    # defaults, or a base config (e.g. the teacher's) for options the user left out.
    # ``training=False`` (export, quantize, evaluate, compress): no augmentation or mixing,
    # which only change how a model is trained.
    g = p.add_argument_group("data")
    g.add_argument("--dataset", required=dataset_required, choices=DATASETS.names(),
                   help="dataset name (folder = any class-per-folder directory or zip)")
    g.add_argument("--data-root", help="folder holding the dataset archives or extracted folders "
                   "(default: $RSDISTILL_DATA, else ~/.cache/rsdistill/data); for --dataset "
                   "folder, the class-per-folder directory or zip itself")
    if student:
        # The student's size; a teacher trained at another size reads its own view
        # of the same scenes (cross-resolution distillation).
        g.add_argument("--image-size", "--student-image-size", dest="image_size", type=int,
                       help="the student's input: images resized to N×N (default: the teacher "
                            "run's size); a teacher trained at another size is fed its own "
                            "view of the same augmented scenes")
    else:
        g.add_argument("--image-size", type=int, help=f"images are resized to N×N (default {_D.image_size})")
    g.add_argument("--source-size", type=int,
                   help="reduce every image to N×N first, then resize it (bicubic) to "
                        "--image-size: e.g. a teacher fine-tuned on what a 32 px student sees "
                        "(default: decode straight to --image-size)")
    g.add_argument("--cache-dir", help="decoded-tensor cache (default: $RSDISTILL_CACHE, "
                   "else ~/.cache/rsdistill/cache)")
    g.add_argument("--allow-missing-classes", action="store_true", default=None,
                   help="use only the class folders found instead of failing")
    g.add_argument("--skip-corrupt", action="store_true", default=None,
                   help="leave undecodable images out (reported)")
    g.add_argument("--download", action="store_true", default=None,
                   help="download the archive if it is missing")
    g.add_argument("--split-fractions", dest="split",
                   help=f"train/val/test fractions (default {_D.split})")
    g.add_argument("--split-seed", type=int, help=f"seed of the stratified split (default {_D.split_seed})")
    g.add_argument("--split-dir", help="folder with <name>-train.txt/-val.txt/-test.txt split files")
    g.add_argument("--standardize", action="store_true", default=None,
                   help="per-channel mean/std standardisation (statistics of the training split)")
    if training:
        _add_training_data_args(g)
    if student:
        g.add_argument("--teacher-view", choices=TEACHER_VIEWS,
                       help="own: a teacher of another resolution reads the scene at its own "
                            "size (default); upsampled: it reads the student's view upsampled "
                            "to its input size (resolution-consistent teaching)")
        g.add_argument("--teacher-augment", choices=TEACHER_AUGMENT,
                       help="same: the teacher sees exactly the student's augmented view "
                            "(default, consistent teaching); independent: the teacher's view "
                            "gets its own flip, rotation and crop")
    if student:
        g.add_argument("--transfer-set", metavar="PATH|DATASET",
                       help="unlabelled images the teacher labels and the student learns from "
                            "(soft targets only): a folder or zip, class-per-folder or flat, or "
                            "a dataset name read from --data-root, e.g. aid; refused if one is "
                            "an image of the test split")
        g.add_argument("--transfer-limit", type=int,
                       help="use a fixed random subset of this many transfer images")
    g.add_argument("--workers", type=int, help="processes for the first decode (default: cores)")


def _add_training_data_args(g) -> None:
    for flag in ("hflip", "vflip", "rot90", "crop"):
        g.add_argument(f"--no-{flag}", dest=flag, action="store_false", default=None,
                       help=f"disable the {flag} training augmentation")
    g.add_argument("--crop-pad", type=float,
                   help="random crop strength: reflect padding as a fraction of the side, the "
                        f"largest shift (default {_D.crop_pad} = 4 px at 32 px; 0.0625 is milder)")
    g.add_argument("--mix", choices=MIX_MODES,
                   help="mix training batches: mixup or cutmix (default none); with a teacher at "
                        "--alpha 1 the target is the teacher's prediction on the mixed image "
                        "(function matching)")
    g.add_argument("--mix-alpha", type=float,
                   help=f"Beta(a, a) of the mixing weight (default {_D.mix_alpha})")
    g.add_argument("--mix-prob", type=float,
                   help="share of training images that get a mixing partner, the rest stay "
                        f"whole (default {_D.mix_prob}; 0.5 is milder for small inputs)")


def data_config(args: argparse.Namespace, base: DataConfig | None = None) -> DataConfig:
    """``base`` (or the defaults) overridden by every data option given on the command line."""
    cfg = dataclasses.replace(base) if base is not None else DataConfig()
    for f in dataclasses.fields(DataConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            setattr(cfg, f.name, value)
    return cfg


def parse_option_value(text: str) -> object:
    """``true``/``false`` -> bool, then int, then float, else the string itself.

    Typed here so the loss's own check sees ``50`` and not ``"50"``, and so the value is
    written to config.yaml as a number (a later ``--resume`` then compares numbers).
    """
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_method_options(items: list[str] | None) -> dict[str, object]:
    """Repeated ``KEY=VALUE`` arguments as a dict; a malformed or repeated key is an error."""
    options: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or not value.strip():
            raise ConfigError(f"--method-option takes KEY=VALUE (e.g. hint_weight=50), "
                              f"got {item!r}")
        if key in options:
            raise ConfigError(f"--method-option {key} is given twice")
        options[key] = parse_option_value(value.strip())
    return options


def parse_layers(text: str | None, flag: str) -> list[str] | None:
    """``layer1,layer2`` as a list; ``None`` (flag not given) stays ``None``."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"{flag} needs one or more comma-separated layer names, got {text!r}")
    return names


def check_resume_target(args: argparse.Namespace) -> None:
    """``--resume`` continues a run that is there; a mistyped --out used to start a new
    run from scratch and exit 0. (Studies and comparisons resume their own sub-runs,
    which may not exist yet: this is a check on what the user asked for.)"""
    out = Path(args.out).expanduser()
    if args.resume and not out.is_dir():
        what = "does not exist" if not out.exists() else "is not a directory"
        raise ConfigError(f"--resume: {out} {what}, so there is no run to continue; check "
                          "--out, or leave out --resume to start a new run")


# One meaning everywhere: 0 leaves the count to torch (OMP_NUM_THREADS when set, else
# one per core), for torch and onnxruntime timings alike (export/ort_backend.py).
THREADS_ZERO = "0 = torch's thread count: OMP_NUM_THREADS when set, else one per core"
RUN_HELP = "run directory, or a study or sweep folder (its best student)"


def chosen_run(path: str) -> str:
    """``path``, or for a study or sweep folder its best student's run (said in one line)."""
    chosen, note = run_dir(path)
    if note:
        log.info("%s", note)
    return str(chosen)
