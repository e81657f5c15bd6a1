"""``pareto``'s options for where its students start and which teacher each size gets:
``--student-pretrained imagenet`` and ``--teacher-at SIZE=PATH`` (docs/pareto_students.md)."""

from __future__ import annotations

import argparse

from rsdistill.cli.schema_args import given
from rsdistill.errors import ConfigError
from rsdistill.models.imagenet import IMAGENET
from rsdistill.training.config import TrainConfig, recipe_fill


def add_student_start_args(g) -> None:
    g.add_argument("--student-pretrained", choices=[IMAGENET],
                   help="timm: students start from their ImageNet weights, fed their own "
                        "normalisation and trained with the fine-tuning recipe for the "
                        "training options not given; their scratch member is the pretrained "
                        "student fine-tuned without the teacher. Other students start from "
                        "random weights; the report says which is which")
    g.add_argument("--teacher-at", action="append", metavar="SIZE=PATH",
                   help="the teacher of the cells at SIZE px (repeatable; default --teacher), "
                        "e.g. one fine-tuned on that size's view: rsdistill train ... "
                        "--image-size 128 --source-size SIZE")


def student_start_settings(args: argparse.Namespace) -> dict:
    """ParetoConfig's ``student_pretrained``, ``fine_tune`` and ``size_teachers``."""
    if getattr(args, "pretrained", None):
        raise ConfigError("pareto trains several students: pass --student-pretrained imagenet "
                          "(it applies to the timm: students) instead of --pretrained")
    fine_tune = recipe_fill(given(args, TrainConfig)) if args.student_pretrained else {}
    return {"student_pretrained": args.student_pretrained, "fine_tune": fine_tune,
            "size_teachers": parse_size_teachers(args.teacher_at)}


def parse_size_teachers(items: list[str] | None) -> dict[int, str]:
    teachers: dict[int, str] = {}
    for item in items or []:
        size, sep, path = item.partition("=")
        if not sep or not size.strip().isdigit() or not path.strip():
            raise ConfigError(f"--teacher-at takes SIZE=PATH (e.g. 32=runs/teacher_src32), "
                              f"got {item!r}")
        if int(size) in teachers:
            raise ConfigError(f"--teacher-at gives size {int(size)} twice")
        teachers[int(size)] = path.strip()
    return teachers
