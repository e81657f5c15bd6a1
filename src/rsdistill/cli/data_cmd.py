"""``rsdistill data info`` and ``rsdistill data download``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rsdistill.cli.common import add_data_args, data_config
from rsdistill.data.dataset import default_data_root
from rsdistill.data.download import download_dataset
from rsdistill.data.module import prepare_data
from rsdistill.data.specs import DATASETS


def register(sub) -> None:
    p = sub.add_parser("data", help="inspect and fetch datasets",
                       description="Inspect and fetch scene datasets.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True

    info = dsub.add_parser("info", help="classes, counts, splits and cache path of a dataset")
    add_data_args(info, training=False)
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=cmd_info)

    dl = dsub.add_parser("download", help="download a dataset archive into the data root")
    dl.add_argument("--dataset", required=True, choices=[n for n in DATASETS.names() if n != "folder"])
    dl.add_argument("--data-root", help="where to put the archive (default: $RSDISTILL_DATA)")
    dl.set_defaults(func=cmd_download)


def cmd_info(args: argparse.Namespace) -> int:
    # Inspection shows a split that cannot be trained on, with a warning, instead of failing.
    prepared = prepare_data(data_config(args), check_splits=False)
    info = prepared.describe()
    if args.json:
        print(json.dumps(info))
        return 0
    n = len(info["classes"])
    print(f"dataset     {info['dataset']}  ({n} class{'es' if n != 1 else ''}, {info['total']} images)")
    print(f"source      {info['source']}")
    print(f"image size  {info['image_size']}×{info['image_size']}")
    print(f"cache       {info['cache_path'] or '(not written: decoded in memory)'}")
    if info["missing_classes"]:
        print(f"missing     {', '.join(info['missing_classes'])}")
    if info["skipped_corrupt"]:
        print(f"skipped     {info['skipped_corrupt']} images (corrupt, not regular files, or "
              "outside the data folder)")
    s = info["splits"]
    print(f"splits      train {s['train']} / val {s['val']} / test {s['test']}")
    width = max(len(c) for c in info["classes"])
    for cls, n in info["counts"].items():
        print(f"  {cls:<{width}}  {n}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    spec = DATASETS.get(args.dataset)
    root = Path(args.data_root) if args.data_root else default_data_root()
    path = download_dataset(spec, root)
    print(path)
    return 0
