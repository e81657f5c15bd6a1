"""``rsdistill report DIR``: report.md and report.html of a sweep."""

from __future__ import annotations

import argparse

from rsdistill.report.sweep_report import write_report


def register(sub) -> None:
    p = sub.add_parser("report", help="write report.md/report.html of a sweep directory")
    p.add_argument("sweep_dir")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    print(f"wrote {write_report(args.sweep_dir)}")
    return 0
