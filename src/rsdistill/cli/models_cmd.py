"""``rsdistill models list``: names, parameters and FLOPs at an input size."""

from __future__ import annotations

import argparse
import json

from rsdistill.cli.common import data_config
from rsdistill.cli.schema_args import add_section
from rsdistill.data.module import DataConfig
from rsdistill.models import describe_models, list_model_names


def register(sub) -> None:
    p = sub.add_parser("models", help="list the available models")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True
    ls = msub.add_parser("list", help="names, parameters and FLOPs at a given input size")
    add_section(ls, DataConfig, None, only=("image_size",),
                overrides={"image_size": {"help": "the input (N×N) the FLOPs are counted at"}})
    ls.add_argument("--num-classes", type=int, default=21)
    ls.add_argument("--json", action="store_true")
    ls.add_argument("names", nargs="*", help="models to describe (default: all registered; "
                    "timm models by 'timm:NAME')")
    ls.set_defaults(func=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    args.image_size = data_config(args).image_size
    rows = describe_models(args.names or list_model_names(), args.image_size, args.num_classes)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'model':<28} {'params':>12} {'MFLOPs':>10}   (input {args.image_size}×{args.image_size}, "
          f"{args.num_classes} classes; FLOPs = 2·MACs, torch's counter)")
    for r in rows:
        print(f"{r['name']:<28} {r['params']:>12,} {r['flops'] / 1e6:>10.1f}")
    return 0
