"""Options shared by the commands that train (train, distill, sweep, compare, pareto):
the training section and the method settings (generated from TrainConfig and
MethodConfig, see schema_args), the teacher assistant and the flags each of them defines
once (``--teacher``, ``--seeds``, ``--method-option``), and their reading into config
objects. Each default comes from its config dataclass."""

from __future__ import annotations

import argparse
from pathlib import Path

from rsdistill.cli.common import data_config, parse_layers, parse_method_options
from rsdistill.cli.schema_args import add_section, given
from rsdistill.config import from_dict
from rsdistill.data.module import DataConfig
from rsdistill.errors import ConfigError
from rsdistill.experiments.assistant import parse_assistant, train_assistant
from rsdistill.experiments.teacher import teacher_data_config
from rsdistill.losses import MethodConfig, methods_help
from rsdistill.training.config import TrainConfig, recipe_notes, train_config_from


def add_teacher_arg(g, required: bool = False, note: str = "") -> None:
    g.add_argument("--teacher", required=required, default=None if required else "",
                   help="teacher run directory or model.pt" + (f" ({note})" if note else ""))


def add_weight_args(g, alpha: str | None = None, temperature: str = "softmax temperature") -> None:
    """MethodConfig's ``--temperature`` (its default the method's own, read from the METHODS
    registry) and, with its help text given, ``--alpha``."""
    overrides = {"temperature": {"help": temperature}, "alpha": {"help": alpha}}
    add_section(g, MethodConfig, None, only=("temperature", "alpha") if alpha else ("temperature",),
                overrides=overrides)


def add_seeds_arg(g, config: type, shown: str | None = None) -> None:
    """``--seeds``, generated from the ``seeds`` field of the command's config dataclass."""
    add_section(g, config, None, only=("seeds",), overrides={"seeds": {"shown": shown}})


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


def add_train_args(p: argparse.ArgumentParser, model_flag: str, model_help: str,
                   model_default: str | None = None) -> None:
    """TrainConfig's options (generated from its fields; the fine-tuning recipe's other
    defaults noted), then the options of the run itself. The model option is required
    unless the command has a ``model_default`` of its own (as the help states it)."""
    model = {"flags": (model_flag,), "help": model_help, "required": model_default is None,
             "shown": model_default}
    g = add_section(p, TrainConfig, "training", notes=recipe_notes(), overrides={"model": model})
    g.add_argument("--out", required=True, help="run directory to write")
    g.add_argument("--resume", action="store_true", help="continue the run in --out")
    g.add_argument("--overwrite", action="store_true",
                   help="replace what rsdistill wrote in --out (a run, sweep, comparison, "
                        "compress output, ...) and start afresh; other files there are kept")
    g.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bars (log lines only)")


def train_config(args: argparse.Namespace) -> TrainConfig:
    return train_config_from(given(args, TrainConfig))


def add_assistant_args(g) -> None:
    g.add_argument("--assistant", metavar="MODEL[@SIZE]",
                   help="teacher-assistant chain: first distil MODEL (at SIZE px, default the "
                        "student's) from --teacher with KD into OUT/assistant, then teach the "
                        "student with it, e.g. resnet8x4@64")
    g.add_argument("--assistant-epochs", type=int,
                   help="the assistant's epochs (default: --epochs)")


def assistant_teacher(args: argparse.Namespace, data_cfg: DataConfig,
                      train_cfg: TrainConfig) -> str:
    """--teacher, or the assistant distilled from it when --assistant is given."""
    assistant = parse_assistant(args.assistant, args.assistant_epochs)
    if not assistant.enabled:
        return args.teacher
    if not args.teacher:
        raise ConfigError("--assistant is distilled from --teacher; pass --teacher")
    return train_assistant(Path(args.out), assistant, args.teacher, data_cfg, train_cfg,
                           progress=args.progress)


def add_method_args(g) -> None:
    """--method and its settings, shared by ``distill``, ``sweep`` and ``pareto``."""
    add_section(g, MethodConfig, None, only=("method",))
    add_method_option_arg(g)
    add_section(g, MethodConfig, None, only=("student_layers", "teacher_layers"))


def method_settings(args: argparse.Namespace) -> dict:
    """The method settings from the command line, as DistillConfig/MethodConfig keywords."""
    method = args.method if args.method is not None else MethodConfig.method
    grouped = split_method_options(args.method_options)
    stray = sorted(m for m in grouped if m not in (None, method))
    if stray:
        raise ConfigError(f"--method-option {stray[0]}:... names method {stray[0]}, but this run "
                          f"trains {method}; drop the prefix or pass --method {stray[0]}")
    options = parse_method_options([*grouped.get(None, []), *grouped.get(method, [])])
    # --peers is the readable spelling of dml's option; given both ways it is ambiguous.
    peers = getattr(args, "peers", None)
    if peers is not None:
        if "peers" in options:
            raise ConfigError("peers is given twice (--peers and --method-option peers=...)")
        options["peers"] = peers
    return {**given(args, MethodConfig), "method": method, "method_options": options,
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


