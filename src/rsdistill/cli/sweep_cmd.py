"""``rsdistill sweep``: α (and β) sweeps over several seeds as fused runs."""

from __future__ import annotations

import argparse

from rsdistill.cli.backend_options import add_backend_arguments, backend_config
from rsdistill.cli.common import add_data_args, check_resume_target
from rsdistill.cli.schema_args import given
from rsdistill.cli.training_args import (
    add_assistant_args,
    add_method_args,
    add_seeds_arg,
    add_teacher_arg,
    assistant_teacher,
    add_train_args,
    add_weight_args,
    distill_data_config,
    method_settings,
    train_config,
)
from rsdistill.experiments.grid import DEFAULT_ALPHAS, SweepConfig, parse_alphas, parse_betas
from rsdistill.experiments.sweep import run_sweep
from rsdistill.losses import MethodConfig
from rsdistill.report.blocks import pm_of, seeds_text


def register(sub) -> None:
    p = sub.add_parser("sweep", help="distil students at many α (and β) values in one fused run",
                       description="All students of a seed train in one pass over the data: each "
                                   "batch is augmented once and seen by the teacher once.")
    add_data_args(p, dataset_required=False, student=True)
    add_train_args(p, "--student", "student model name, e.g. resnet8")
    g = p.add_argument_group("sweep")
    add_teacher_arg(g, required=True)
    g.add_argument("--alphas", default=DEFAULT_ALPHAS,
                   help=f"list 0,0.1,0.3 or range start:stop:step, inclusive (default {DEFAULT_ALPHAS})")
    g.add_argument("--nuclear-beta", default="0",
                   help="β settings, comma-separated numbers and/or 'alpha' (e.g. 0,alpha)")
    add_seeds_arg(g, SweepConfig)
    add_weight_args(g)
    g.add_argument("--jobs", type=int, default=0,
                   help="seeds trained side by side, one process each (default 0 = one per CPU "
                        "core, 1 on a GPU or under torchrun)")
    add_method_args(g)
    add_assistant_args(g)
    add_backend_arguments(p)
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    sweep = SweepConfig(teacher=args.teacher, alphas=parse_alphas(args.alphas),
                        betas=parse_betas(args.nuclear_beta), **given(args, SweepConfig),
                        method=MethodConfig(**method_settings(args)))
    sweep.validate()  # before an assistant trains
    backend = backend_config(args)
    check_resume_target(args)
    data_cfg = distill_data_config(args)
    train_cfg = train_config(args)
    sweep.teacher = assistant_teacher(args, data_cfg, train_cfg)
    summary = run_sweep(args.out, data_cfg, train_cfg, sweep,
                        resume=args.resume, progress=args.progress, jobs=args.jobs,
                        overwrite=args.overwrite, backend=backend)
    print(f"{'beta':>6} {'alpha':>6} {'accuracy':>16} {'f1_macro':>16}   "
          f"(test split, {seeds_text(sweep.seeds)})")
    for r in summary["aggregate"]:
        print(f"{r['beta']:>6} {r['alpha']:>6.2f} {pm_of(r, 'accuracy'):>16} "
              f"{pm_of(r, 'f1_macro'):>16}")
    print(f"wrote {args.out}/results.json")
    return 0
