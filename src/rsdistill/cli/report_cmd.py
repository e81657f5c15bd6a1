"""``rsdistill report DIR``: report.md and report.html of a sweep (or comparison.md/.html
of a method comparison)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rsdistill.experiments.locate import report_dir
from rsdistill.report.compare_report import write_compare_report
from rsdistill.runtime.rundir import COMPARE_RESULTS
from rsdistill.report.speedup import describe
from rsdistill.report.sweep_report import _read_speed, write_report

INT8_HELP = ("add an int8 section: the best student's runs quantised with ONNX Runtime (as "
             "'rsdistill quantize' does, in memory), fp32 vs int8 accuracy, macro F1, file "
             "size and batch-1 latency")


def register(sub) -> None:
    p = sub.add_parser("report", help="write report.md/report.html of a sweep directory "
                                      "(comparison.md/.html of a compare directory)")
    p.add_argument("sweep_dir", help="sweep directory (results.json), a study folder (its "
                                     "sweep) or a compare directory (comparison.json)")
    p.add_argument("--int8", action="store_true", help=INT8_HELP)
    p.add_argument("--timing-threads", type=int, default=1,
                   help="intra-op threads for the side-by-side teacher/student timing (default 1)")
    p.add_argument("--retime", action="store_true",
                   help="time teacher and best student again instead of reusing speed.json")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    args.sweep_dir = str(report_dir(args.sweep_dir))
    if (Path(args.sweep_dir) / COMPARE_RESULTS).is_file():
        print(f"wrote {write_compare_report(args.sweep_dir, int8=args.int8)}")
        return 0
    path = write_report(args.sweep_dir, int8=args.int8, timing_threads=args.timing_threads,
                        retime=args.retime)
    speed = _read_speed(args.sweep_dir)
    if speed is not None:
        print(describe(speed))
    print(f"wrote {path}")
    return 0
