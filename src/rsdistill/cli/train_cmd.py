"""``rsdistill train`` (a teacher or a student from scratch) and ``rsdistill distill``."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path

from rsdistill.cli.common import THREADS_ZERO, add_data_args, data_config, parse_layers, parse_method_options
from rsdistill.config import from_dict
from rsdistill.data.module import DataConfig
from rsdistill.errors import ConfigError
from rsdistill.experiments.assistant import parse_assistant, train_assistant
from rsdistill.experiments.procedures import run_training
from rsdistill.experiments.records import DistillConfig
from rsdistill.experiments.teacher import teacher_data_config
from rsdistill.losses import METHODS, methods_help
from rsdistill.models.imagenet import IMAGENET
from rsdistill.runtime.precision import PRECISIONS
from rsdistill.training.config import FINE_TUNE_RECIPE, TEACHER_CACHE, TrainConfig

log = logging.getLogger(__name__)

SUMMARY_KEYS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "params", "flops")


def _default(d: TrainConfig, key: str) -> str:
    """``default X`` and, where the fine-tuning recipe differs, its value."""
    text = f"default {getattr(d, key)}"
    if FINE_TUNE_RECIPE[key] != getattr(d, key):
        text += f"; {FINE_TUNE_RECIPE[key]} with --pretrained imagenet"
    return text


def add_train_args(p: argparse.ArgumentParser, model_flag: str, model_help: str,
                   model_required: bool = True) -> None:
    # The options of the fine-tuning recipe default to None ("not given"): train_config()
    # fills them in from the recipe with --pretrained imagenet, else from TrainConfig.
    d = TrainConfig()
    g = p.add_argument_group("training")
    g.add_argument(model_flag, dest="model", required=model_required, help=model_help)
    g.add_argument("--epochs", type=int, help=_default(d, "epochs"))
    g.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    g.add_argument("--optimizer", help=f"sgd or adamw ({_default(d, 'optimizer')})")
    g.add_argument("--lr", type=float, help=f"peak learning rate ({_default(d, 'lr')})")
    g.add_argument("--momentum", type=float, default=d.momentum,
                   help=f"SGD momentum (default {d.momentum:g})")
    g.add_argument("--weight-decay", type=float, help=_default(d, "weight_decay"))
    g.add_argument("--schedule", help=f"cosine, onecycle or constant ({_default(d, 'schedule')})")
    g.add_argument("--warmup-epochs", type=int, help=_default(d, "warmup_epochs"))
    g.add_argument("--label-smoothing", type=float, help=_default(d, "label_smoothing"))
    g.add_argument("--backbone-lr-scale", type=float,
                   help="learning rate of every layer but the classifier, as a fraction of "
                        f"--lr, for fine-tuning pretrained weights ({_default(d, 'backbone_lr_scale')})")
    g.add_argument("--seed", type=int, default=d.seed, help="seeds model init, batches and augmentation")
    g.add_argument("--device", default=d.device, help="auto (CUDA if present, else CPU), cpu, cuda")
    g.add_argument("--precision", default=d.precision, choices=PRECISIONS,
                   help="auto (default) = by the hardware: on a CPU bf16 autocast + channels_last where "
                        "bf16 is native, else fp32 + channels_last; bf16 or fp16 on CUDA; "
                        "fp32 = plain")
    g.add_argument("--inference-precision", default=d.inference_precision, choices=PRECISIONS,
                   help=f"precision for the latency/throughput figures (default {d.inference_precision})")
    g.add_argument("--latency-runs", type=int, default=d.latency_runs,
                   help=f"timed batch-1 calls for the latency figures (default {d.latency_runs})")
    g.add_argument("--inference-threads", type=int, default=d.inference_threads,
                   help=f"CPU threads for the latency figures (default {d.inference_threads}; {THREADS_ZERO})")
    g.add_argument("--teacher-cache", choices=TEACHER_CACHE, default=d.teacher_cache,
                   help="auto (default): with flips/rotations as the only augmentation, the "
                        "teacher's logits of all eight views of each image are computed once; "
                        "off: the teacher runs on every batch")
    g.add_argument("--pretrained", metavar="imagenet|PATH",
                   help="start from ImageNet weights (timm: models; offline for "
                        "timm:tf_efficientnet_lite0 with the 'pretrained' extra, else timm "
                        "downloads them; the data is normalised as the weights expect and the "
                        "fine-tuning recipe fills in the training options not given) or from a "
                        "local state dict (.pt)")
    g.add_argument("--out", required=True, help="run directory to write")
    g.add_argument("--resume", action="store_true", help="continue the run in --out")
    g.add_argument("--overwrite", action="store_true",
                   help="replace what rsdistill wrote in --out (a run, sweep, comparison, "
                        "compress output, ...) and start afresh; other files there are kept")
    g.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bars (log lines only)")
    g.add_argument("--sync-bn", action="store_true",
                   help="under torchrun on GPUs: SyncBatchNorm, batch statistics over the "
                        "global batch instead of each process's shard")


def train_config(args: argparse.Namespace) -> TrainConfig:
    recipe = FINE_TUNE_RECIPE if args.pretrained == IMAGENET else {}
    defaults = asdict(TrainConfig())
    filled = {k: recipe.get(k, defaults[k]) for k in FINE_TUNE_RECIPE if getattr(args, k) is None}
    if recipe and filled:
        log.info("--pretrained imagenet: fine-tuning recipe %s (options given on the command "
                 "line win)", ", ".join(f"{k}={v}" for k, v in filled.items()))
    given = {k: getattr(args, k) for k in FINE_TUNE_RECIPE if getattr(args, k) is not None}
    return TrainConfig(
        model=args.model, batch_size=args.batch_size, momentum=args.momentum, seed=args.seed,
        device=args.device, precision=args.precision,
        inference_precision=args.inference_precision, latency_runs=args.latency_runs,
        inference_threads=args.inference_threads, pretrained=args.pretrained,
        sync_bn=args.sync_bn, teacher_cache=args.teacher_cache, **filled, **given,
    )


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
    dd = DistillConfig()
    g.add_argument("--teacher", default="", help="teacher run directory or model.pt (not "
                   "needed by dml and self, which only take their data defaults from it)")
    add_method_args(g)
    g.add_argument("--peers", metavar="A,B", help="dml: every peer's model, peer 0 first and "
                   "equal to --student (default: two copies of the student); the same as "
                   "--method-option peers=A,B")
    g.add_argument("--alpha", type=float, default=dd.alpha,
                   help="weight of the method's loss; (1-α) weighs the hard loss, 0..1")
    g.add_argument("--temperature", "-T", type=float, default=None,
                   help="softmax temperature (default: the method's, 1 for dml, else 4)")
    g.add_argument("--nuclear-beta", default="0",
                   help="weight β of the first layer's nuclear norm: a number, or 'alpha' (β = α)")
    add_assistant_args(g)
    d.set_defaults(func=cmd_distill)


def add_assistant_args(g) -> None:
    g.add_argument("--assistant", metavar="MODEL[@SIZE]",
                   help="teacher-assistant chain: first distil MODEL (at SIZE px, default the "
                        "student's) from --teacher with KD into OUT/assistant, then teach the "
                        "student with it, e.g. resnet8x4@64")
    g.add_argument("--assistant-epochs", type=int,
                   help="the assistant's epochs (default: --epochs)")


def assistant_teacher(args: argparse.Namespace, data_cfg: DataConfig) -> str:
    """--teacher, or the assistant distilled from it when --assistant is given."""
    assistant = parse_assistant(args.assistant, args.assistant_epochs)
    if not assistant.enabled:
        return args.teacher
    if not args.teacher:
        raise ConfigError("--assistant is distilled from --teacher; pass --teacher")
    return train_assistant(Path(args.out), assistant, args.teacher, data_cfg, train_config(args),
                           progress=args.progress)


def add_method_args(g) -> None:
    """--method and its settings, shared by ``distill`` and ``sweep``."""
    g.add_argument("--method", default=DistillConfig().method,
                   help=f"distillation method: {', '.join(METHODS.names())} (default kd)")
    g.add_argument("--method-option", dest="method_options", action="append", metavar="KEY=VALUE",
                   help="an option of the method, repeatable, e.g. hint_weight=50; each method's "
                        f"options: {methods_help()}")
    g.add_argument("--student-layers", metavar="A,B",
                   help="student modules tapped by fitnet/at (default: the method's pick among "
                        "the model's stages)")
    g.add_argument("--teacher-layers", metavar="A,B", help="teacher modules, paired with "
                   "--student-layers in order")


def method_settings(args: argparse.Namespace) -> dict:
    """The method settings from the command line, as DistillConfig/SweepConfig keywords."""
    options = parse_method_options(args.method_options)
    # --peers is the readable spelling of dml's option; given both ways it is ambiguous.
    peers = getattr(args, "peers", None)
    if peers is not None:
        if "peers" in options:
            raise ConfigError("peers is given twice (--peers and --method-option peers=...)")
        options["peers"] = peers
    return {"method": args.method, "method_options": options,
            "student_layers": parse_layers(args.student_layers, "--student-layers"),
            "teacher_layers": parse_layers(args.teacher_layers, "--teacher-layers")}


def _print_summary(metrics: dict, out: str) -> None:
    summary = {k: metrics[k] for k in SUMMARY_KEYS}
    summary["latency_ms_p50"] = metrics["inference"]["latency_ms_p50"]
    print(json.dumps(summary))
    print(f"wrote {out}")


def cmd_train(args: argparse.Namespace) -> int:
    metrics = run_training(args.out, data_config(args), train_config(args),
                           resume=args.resume, progress=args.progress, overwrite=args.overwrite)
    _print_summary(metrics, args.out)
    return 0


def distill_data_config(args: argparse.Namespace) -> DataConfig:
    """The teacher run's data options, overridden by those given on the command line."""
    if not args.teacher:
        if not args.dataset:
            raise ConfigError("without --teacher there are no data options to start from; "
                              "pass --dataset (and --data-root, --image-size, ...)")
        return data_config(args)
    base = teacher_data_config(args.teacher)
    if base is None and not args.dataset:
        raise ConfigError(f"the teacher {args.teacher} has no config.yaml beside it; pass --dataset")
    return data_config(args, from_dict(DataConfig, base, "teacher data") if base else None)


def cmd_distill(args: argparse.Namespace) -> int:
    distill = DistillConfig(teacher=args.teacher, alpha=args.alpha,
                            temperature=args.temperature, nuclear_beta=args.nuclear_beta,
                            **method_settings(args))
    distill.validate()  # before an assistant trains
    data_cfg = distill_data_config(args)
    distill.teacher = assistant_teacher(args, data_cfg)
    metrics = run_training(args.out, data_cfg, train_config(args), distill,
                           resume=args.resume, progress=args.progress, overwrite=args.overwrite)
    _print_summary(metrics, args.out)
    return 0
