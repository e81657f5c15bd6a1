"""``rsdistill train`` (a teacher or a student from scratch) and ``rsdistill distill``."""

from __future__ import annotations

import argparse
import json

from rsdistill.cli.common import add_data_args, check_resume_target, data_config
from rsdistill.cli.training_args import (
    add_assistant_args, add_method_args, add_teacher_arg, add_train_args, add_weight_args,
    assistant_teacher, distill_data_config, method_settings, train_config,
)
from rsdistill.experiments.procedures import run_training
from rsdistill.experiments.records import DistillConfig
from rsdistill.losses import METHODS

SUMMARY_KEYS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "params", "flops")


def register(sub) -> None:
    t = sub.add_parser("train", help="train a model (a teacher, or a student from scratch)",
                       description="Train a model from scratch (or from --pretrained weights).")
    add_data_args(t)
    add_train_args(t, "--model", "model name (see 'rsdistill models list'), e.g. resnet8x4 or timm:resnet18")
    t.set_defaults(func=cmd_train)

    d = sub.add_parser("distill", help="distil a student from a trained teacher, its peers "
                       "or itself (see --method)",
                       description="Train a student with L = α·L_method + (1−α)·L_hard + β·‖W₁‖*. "
                                   "Methods: " + "; ".join(f"{n}: {METHODS.get(n).summary}"
                                                           for n in METHODS) + ". Data options "
                                   "default to the teacher run's; a method without a teacher "
                                   "needs --dataset.")
    add_data_args(d, dataset_required=False, student=True)
    add_train_args(d, "--student", "student model name, e.g. resnet8")
    g = d.add_argument_group("distillation")
    add_teacher_arg(g, note="not needed by dml and self, which only take their data defaults "
                            "from it")
    add_method_args(g)
    g.add_argument("--peers", metavar="A,B", help="dml: every peer's model, peer 0 first and "
                   "equal to --student (default: two copies of the student); the same as "
                   "--method-option peers=A,B")
    add_weight_args(g, alpha="weight of the method's loss; (1-α) weighs the hard loss, 0..1")
    g.add_argument("--nuclear-beta", default="0",
                   help="weight β of the first layer's nuclear norm: a number, or 'alpha' (β = α)")
    add_assistant_args(g)
    d.set_defaults(func=cmd_distill)


def _print_summary(metrics: dict, out: str) -> None:
    summary = {k: metrics[k] for k in SUMMARY_KEYS}
    summary["latency_ms_p50"] = metrics["inference"]["latency_ms_p50"]
    print(json.dumps(summary))
    print(f"wrote {out}")


def cmd_train(args: argparse.Namespace) -> int:
    check_resume_target(args)
    metrics = run_training(args.out, data_config(args), train_config(args),
                           resume=args.resume, progress=args.progress, overwrite=args.overwrite)
    _print_summary(metrics, args.out)
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    distill = DistillConfig(teacher=args.teacher, nuclear_beta=args.nuclear_beta,
                            **method_settings(args))
    train_cfg = train_config(args)
    # Checked before an assistant trains; the run then trains with this loss, built once.
    built = distill.validate(train_cfg.label_smoothing)
    check_resume_target(args)
    data_cfg = distill_data_config(args)
    distill.teacher = assistant_teacher(args, data_cfg, train_cfg)
    metrics = run_training(args.out, data_cfg, train_cfg, distill, resume=args.resume,
                           progress=args.progress, overwrite=args.overwrite, built=built)
    _print_summary(metrics, args.out)
    return 0
