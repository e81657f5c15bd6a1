"""Options shared by the commands that train (train, distill, sweep, compare, pareto):
the training section, the method settings, the teacher assistant and the flags each of
them defines once (``--teacher``, ``--temperature``, ``--seeds``, ``--method-option``),
and their reading into config objects. Each default comes from its config dataclass."""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict
from pathlib import Path

from rsdistill.cli.common import THREADS_ZERO, data_config, parse_layers, parse_method_options
from rsdistill.config import from_dict
from rsdistill.data.module import DataConfig
from rsdistill.errors import ConfigError
from rsdistill.experiments.assistant import parse_assistant, train_assistant
from rsdistill.experiments.records import DistillConfig
from rsdistill.experiments.teacher import teacher_data_config
from rsdistill.losses import DEFAULT_TEMPERATURE, METHODS, default_temperature, methods_help
from rsdistill.models.imagenet import IMAGENET
from rsdistill.runtime.precision import PRECISIONS
from rsdistill.training.config import FINE_TUNE_RECIPE, TEACHER_CACHE, TrainConfig

log = logging.getLogger(__name__)


def add_teacher_arg(g, required: bool = False, note: str = "") -> None:
    g.add_argument("--teacher", required=required, default=None if required else "",
                   help="teacher run directory or model.pt" + (f" ({note})" if note else ""))


def add_temperature_arg(g, scope: str = "") -> None:
    """``--temperature``, its default read from the METHODS registry."""
    others = ", ".join(f"{default_temperature(n):g} for {n}" for n in METHODS
                       if default_temperature(n) != DEFAULT_TEMPERATURE)
    g.add_argument("--temperature", "-T", type=float, default=None,
                   help=f"softmax temperature{scope} (default: the method's own: "
                        f"{others + ', ' if others else ''}{DEFAULT_TEMPERATURE:g} for the others)")


def add_seeds_arg(g, default: int | None, what: str = "") -> None:
    """``--seeds``; ``default`` is the command's config dataclass's (None: the config file's)."""
    shown = f"default {default}" if default is not None else "default: the config's"
    g.add_argument("--seeds", type=int, default=default,
                   help=f"seeds 0..N-1{what} ({shown})")


METHOD_OPTION_HELP = ("an option of the method, [METHOD:]KEY=VALUE, repeatable, e.g. "
                      "hint_weight=50 or fitnet:hint_weight=50 (compare, which trains several "
                      "methods, needs the METHOD: prefix); each method's options: ")


def add_method_option_arg(g) -> None:
    g.add_argument("--method-option", dest="method_options", action="append",
                   metavar="[METHOD:]KEY=VALUE", help=METHOD_OPTION_HELP + methods_help())


def split_method_options(items: list[str] | None) -> dict[str | None, list[str]]:
    """``[METHOD:]KEY=VALUE`` items grouped by method (None: no prefix), each ``KEY=VALUE``."""
    grouped: dict[str | None, list[str]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        method, colon, key = key.rpartition(":")
        if colon and not method.strip():
            raise ConfigError(f"--method-option takes [METHOD:]KEY=VALUE, got {item!r}")
        grouped.setdefault(method.strip() if colon else None, []).append(f"{key}{sep}{value}")
    return grouped


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
                        "off: the teacher runs on every batch; bank: the teacher labels "
                        "--bank-rounds rounds of augmented views (crops, mixing) once, kept "
                        "in the cache and reused, and the student trains with no teacher pass")
    g.add_argument("--bank-rounds", type=int, default=d.bank_rounds,
                   help=f"--teacher-cache bank: rounds of views, epoch e reads round e mod R "
                        f"(default {d.bank_rounds})")
    g.add_argument("--bank-seed", type=int, default=d.bank_seed,
                   help=f"--teacher-cache bank: seed of the views' draws, independent of "
                        f"--seed so students of every seed share one bank (default {d.bank_seed})")
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
        sync_bn=args.sync_bn, teacher_cache=args.teacher_cache, bank_rounds=args.bank_rounds,
        bank_seed=args.bank_seed, **filled, **given,
    )


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
    add_method_option_arg(g)
    g.add_argument("--student-layers", metavar="A,B",
                   help="student modules tapped by fitnet/at (default: the method's pick among "
                        "the model's stages)")
    g.add_argument("--teacher-layers", metavar="A,B", help="teacher modules, paired with "
                   "--student-layers in order")


def method_settings(args: argparse.Namespace) -> dict:
    """The method settings from the command line, as DistillConfig/SweepConfig keywords."""
    grouped = split_method_options(args.method_options)
    stray = sorted(m for m in grouped if m not in (None, args.method))
    if stray:
        raise ConfigError(f"--method-option {stray[0]}:... names method {stray[0]}, but this run "
                          f"trains {args.method}; drop the prefix or pass --method {stray[0]}")
    options = parse_method_options([*grouped.get(None, []), *grouped.get(args.method, [])])
    # --peers is the readable spelling of dml's option; given both ways it is ambiguous.
    peers = getattr(args, "peers", None)
    if peers is not None:
        if "peers" in options:
            raise ConfigError("peers is given twice (--peers and --method-option peers=...)")
        options["peers"] = peers
    return {"method": args.method, "method_options": options,
            "student_layers": parse_layers(args.student_layers, "--student-layers"),
            "teacher_layers": parse_layers(args.teacher_layers, "--teacher-layers")}


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
    if base:
        # The teacher's --source-size describes the view it was taught on, which it reads
        # again from its own model file; the student's images are not reduced with it.
        base = {**base, "source_size": None}
    return data_config(args, from_dict(DataConfig, base, "teacher data") if base else None)


