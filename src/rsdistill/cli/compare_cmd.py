"""``rsdistill compare``: several methods, same settings and seeds, one table."""

from __future__ import annotations

import argparse

from rsdistill.cli.backend_options import add_backend_arguments, backend_config
from rsdistill.cli.common import add_data_args, check_resume_target, parse_method_options
from rsdistill.cli.report_cmd import INT8_HELP
from rsdistill.cli.schema_args import given
from rsdistill.cli.training_args import (
    add_method_option_arg, add_seeds_arg, add_teacher_arg, add_train_args, add_weight_args,
    distill_data_config, split_method_options, train_config,
)
from rsdistill.experiments.compare import CompareConfig, default_methods, run_compare
from rsdistill.errors import ConfigError
from rsdistill.losses import METHODS, MethodConfig
from rsdistill.report.blocks import pm_of, seeds_text
from rsdistill.report.compare_report import write_compare_report


def register(sub) -> None:
    p = sub.add_parser(
        "compare", help="train several distillation methods under the same settings and "
                        "compare them in one table",
        description="Each method (plus a scratch baseline) trains the same student on the same "
                    "data, schedule and seeds into OUT/<method>/seed<k>/; then comparison.json, "
                    ".csv, .md, .html and figures/compare_accuracy.png. Rerunning with "
                    "--resume continues: finished runs are not retrained.")
    add_data_args(p, dataset_required=False, student=True)
    add_train_args(p, "--student", "student model name, e.g. resnet8")
    g = p.add_argument_group("comparison")
    g.add_argument("--methods", default=",".join(default_methods()),
                   help=f"comma-separated, from: {', '.join(METHODS.names())} "
                        f"(default {','.join(default_methods())}; scratch is always added)")
    add_seeds_arg(g, CompareConfig)
    add_teacher_arg(g, note="needed by every method that distils from a teacher; data options "
                            "default to its run's")
    add_weight_args(g, alpha="weight of every method's loss, 0..1",
                    temperature="softmax temperature of every method")
    add_method_option_arg(g)
    g.add_argument("--int8", action="store_true", help=INT8_HELP)
    add_backend_arguments(p)
    p.set_defaults(func=cmd_compare)


def parse_methods(text: str) -> list[str]:
    methods = [m.strip() for m in str(text).split(",") if m.strip()]
    if not methods:
        raise ConfigError(f"--methods names no method, got {text!r}; e.g. --methods kd,at,dml")
    return list(dict.fromkeys(methods))


def parse_compare_options(items: list[str] | None) -> dict[str, dict]:
    """``METHOD:KEY=VALUE`` arguments as ``{method: {key: value}}``: the one syntax of
    --method-option, where compare needs the prefix (it trains several methods)."""
    grouped = split_method_options(items)
    if None in grouped:
        raise ConfigError(f"--method-option of compare takes METHOD:KEY=VALUE (e.g. "
                          f"self:variant=teacher_free), got {grouped[None][0]!r}")
    return {method: parse_method_options(opts) for method, opts in grouped.items()}


def cmd_compare(args: argparse.Namespace) -> int:
    cfg = CompareConfig(teacher=args.teacher, methods=parse_methods(args.methods),
                        method_options=parse_compare_options(args.method_options),
                        **given(args, CompareConfig), **given(args, MethodConfig))
    # Checked before the data options are read, so a typo in --methods fails first.
    cfg.validate()
    check_resume_target(args)
    backend = backend_config(args)
    summary = run_compare(args.out, distill_data_config(args), train_config(args), cfg,
                          resume=args.resume, progress=args.progress,
                          overwrite=args.overwrite, backend=backend)
    write_compare_report(args.out)
    print(f"{'method':>10} {'accuracy':>16} {'f1_macro':>16} {'s/epoch':>8}   "
          f"(test split, {seeds_text(cfg.seeds)})")
    for r in summary["methods"]:
        print(f"{r['method']:>10} {pm_of(r, 'accuracy'):>16} {pm_of(r, 'f1_macro'):>16} "
              f"{r['seconds_per_epoch_mean']:>8.3f}")
    if args.int8:
        # Rewritten with the int8 section; run_compare wrote the plain report already.
        write_compare_report(args.out, int8=True)
    print(f"wrote {args.out}/comparison.md")
    return 0
