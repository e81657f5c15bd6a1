"""Options shared by several subcommands."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from rsdistill.cli.schema_args import add_section, given
from rsdistill.data.module import DataConfig
from rsdistill.errors import ConfigError
from rsdistill.experiments.locate import run_dir

log = logging.getLogger(__name__)

# The student's size in a distillation command; a teacher trained at another size reads
# its own view of the same scenes (cross-resolution distillation).
_STUDENT_SIZE = {"flags": ("--image-size", "--student-image-size"), "shown": "the teacher run's size",
                 "help": "the student's input: images resized to N×N; a teacher trained at "
                         "another size is fed its own view of the same augmented scenes"}


def add_data_args(p: argparse.ArgumentParser, dataset_required: bool = True,
                  student: bool = False, training: bool = True) -> None:
    """DataConfig's options (generated from its fields). ``training=False`` (export,
    quantize, evaluate, compress): no augmentation or mixing, which only change how a
    model is trained; ``student``: the distillation options too."""
    # Not required: a model's or teacher's run directory holds the data section.
    overrides = {"dataset": {"required": dataset_required,
                             "shown": "the teacher run's" if student else "the run's"}}
    if student:
        overrides["image_size"] = _STUDENT_SIZE
    scopes = [s for s, on in (("training", training), ("distill", student)) if on]
    add_section(p, DataConfig, "data", scopes=scopes, overrides=overrides)


def data_config(args: argparse.Namespace, base: DataConfig | None = None) -> DataConfig:
    """``base`` (or the defaults) overridden by every data option given on the command line."""
    return dataclasses.replace(base if base is not None else DataConfig(), **given(args, DataConfig))


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


RUN_HELP = "run directory, or a study or sweep folder (its best student)"


def chosen_run(path: str) -> str:
    """``path``, or for a study or sweep folder its best student's run (said in one line)."""
    chosen, note = run_dir(path)
    if note:
        log.info("%s", note)
    return str(chosen)
