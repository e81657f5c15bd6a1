"""``rsdistill report DIR``: report.md and report.html of a sweep."""

from __future__ import annotations

import argparse

from rsdistill.report.speedup import describe
from rsdistill.report.sweep_report import _read_speed, write_report


def register(sub) -> None:
    p = sub.add_parser("report", help="write report.md/report.html of a sweep directory")
    p.add_argument("sweep_dir")
    p.add_argument("--timing-threads", type=int, default=1,
                   help="intra-op threads for the side-by-side teacher/student timing (default 1)")
    p.add_argument("--retime", action="store_true",
                   help="time teacher and best student again instead of reusing speed.json")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    path = write_report(args.sweep_dir, timing_threads=args.timing_threads, retime=args.retime)
    speed = _read_speed(args.sweep_dir)
    if speed is not None:
        print(describe(speed))
    print(f"wrote {path}")
    return 0
