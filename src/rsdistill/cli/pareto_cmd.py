"""``rsdistill pareto``: students of several sizes and resolutions, from scratch and
distilled, and the accuracy–latency front they form."""

from __future__ import annotations

import argparse
from pathlib import Path

from rsdistill.cli.backend_options import add_backend_arguments, backend_config
from rsdistill.cli.common import add_data_args, check_resume_target
from rsdistill.cli.pareto_students import add_student_start_args, student_start_settings
from rsdistill.cli.schema_args import given
from rsdistill.cli.training_args import (
    add_method_args,
    add_seeds_arg,
    add_teacher_arg,
    add_train_args,
    add_weight_args,
    distill_data_config,
    method_settings,
    train_config,
)
from rsdistill.errors import ConfigError
from rsdistill.experiments.pareto import ParetoConfig, run_pareto
from rsdistill.losses import MethodConfig
from rsdistill.report.blocks import pm_of
from rsdistill.report.pareto_report import build_pareto, write_pareto_report


def register(sub) -> None:
    p = sub.add_parser("pareto", help="accuracy vs latency of several students, scratch and "
                                      "distilled, with the Pareto front",
                       description="For every student × input size: one fused sweep with "
                                   "α ∈ {0, --alpha} (scratch and distilled on the same batches) "
                                   "over --seeds seeds into OUT/<student>_<size>/; then every "
                                   "architecture and the teacher are timed side by side (batch 1, "
                                   "ONNX Runtime) and OUT/pareto.md, .csv, .json and "
                                   "figures/pareto.png are written. Rerunning with --resume "
                                   "continues.")
    add_data_args(p, dataset_required=False, student=True)
    add_train_args(p, "--students", "comma-separated student models",
                   model_default=",".join(ParetoConfig().students))
    g = p.add_argument_group("pareto")
    add_teacher_arg(g, required=True)
    g.add_argument("--sizes", default="32,64", help="student input sizes (default 32,64)")
    add_seeds_arg(g, ParetoConfig)
    add_weight_args(g, alpha="the distilled students' α")
    g.add_argument("--jobs", type=int, default=0, help="seeds side by side (0 = one per core)")
    g.add_argument("--timing-threads", type=int, default=1,
                   help="intra-op threads of the side-by-side timing (default 1)")
    add_method_args(g)
    add_student_start_args(g)
    add_backend_arguments(p)
    p.set_defaults(func=cmd_pareto)


def _ints(text: str, flag: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated whole numbers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{flag} names nothing, got {text!r}")
    return values


def cmd_pareto(args: argparse.Namespace) -> int:
    students = [m.strip() for m in args.model.split(",") if m.strip()] if args.model else \
        ParetoConfig().students
    method = MethodConfig(**method_settings(args))
    cfg = ParetoConfig(teacher=args.teacher, students=students, sizes=_ints(args.sizes, "--sizes"),
                       method=method, **given(args, ParetoConfig), **student_start_settings(args))
    cfg.validate()
    check_resume_target(args)
    backend = backend_config(args)
    args.model = students[0]
    data_cfg = distill_data_config(args)
    train_cfg = train_config(args)
    rows = run_pareto(args.out, data_cfg, train_cfg, cfg, resume=args.resume,
                      overwrite=args.overwrite, progress=args.progress, jobs=args.jobs,
                      backend=backend)
    result = build_pareto(rows, args.teacher, args.timing_threads)
    report = write_pareto_report(Path(args.out), result, data_cfg.dataset, train_cfg.epochs)
    for r in sorted(result["rows"], key=lambda r: r["latency_ms"]):
        print(f"{r['model']:>18}@{r['image_size']:<4} {r['kind']:>9}"
              f"{'/imagenet' if r.get('pretrained') else '':<9} "
              f"{pm_of(r, 'accuracy'):>14} "
              f"{r['latency_ms']:8.3f} ms{'  front' if r['on_front'] else ''}")
    print(f"wrote {report}")
    return 0
