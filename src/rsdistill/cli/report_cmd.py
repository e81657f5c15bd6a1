"""``rsdistill report DIR``: report.md and report.html of a sweep (or comparison.md/.html
of a method comparison)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rsdistill.report.compare_report import write_compare_report
from rsdistill.report.sweep_report import write_report

INT8_HELP = ("add an int8 section: the best student's runs quantised with ONNX Runtime (as "
             "'rsdistill quantize' does, in memory), fp32 vs int8 accuracy, macro F1, file "
             "size and batch-1 latency")


def register(sub) -> None:
    p = sub.add_parser("report", help="write report.md/report.html of a sweep directory "
                                      "(comparison.md/.html of a compare directory)")
    p.add_argument("sweep_dir", help="sweep directory (results.json) or compare directory "
                                     "(comparison.json)")
    p.add_argument("--int8", action="store_true", help=INT8_HELP)
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    if (Path(args.sweep_dir) / "comparison.json").is_file():
        print(f"wrote {write_compare_report(args.sweep_dir, int8=args.int8)}")
        return 0
    print(f"wrote {write_report(args.sweep_dir, int8=args.int8)}")
    return 0
