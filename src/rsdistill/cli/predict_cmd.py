"""``rsdistill predict``: classes of new images from any model file."""

from __future__ import annotations

import argparse
import logging

from rsdistill.cli.common import RUN_HELP, chosen_run
from rsdistill.data.inputs import collect_inputs
from rsdistill.evaluation.predictions import check_output_path, check_top_k, format_table, write_rows
from rsdistill.errors import ConfigError
from rsdistill.export.predictor import open_model, predict_inputs
from rsdistill.training.config import THREADS_ZERO

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("predict", help="predict the class of new images (files, folders, zips)",
                       description="Decodes every image as training did (Pillow, RGB, bicubic "
                                   "resize of the whole image to the model's square input, the "
                                   "model's scaling and mean/std) and prints or writes the "
                                   "predicted class and its probability. Unreadable images are "
                                   "named, skipped and counted.")
    p.add_argument("model", help=RUN_HELP + ", a model.pt, model.onnx or model.int8.onnx")
    p.add_argument("inputs", nargs="+", help="image files (any format Pillow reads), folders "
                                             "(searched recursively) or .zip archives")
    p.add_argument("--out", help="write preds.csv or preds.json instead of printing a table")
    p.add_argument("--top-k", type=int, default=1, help="also list the k most probable classes (default 1)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--device", help="device for a PyTorch model (default: cuda if present, else "
                                    "cpu; exported models run on the CPU)")
    p.add_argument("--inference-threads", type=int, default=0,
                   help=f"CPU threads (default 0; {THREADS_ZERO})")
    p.add_argument("--workers", type=int, help="processes decoding images (default: cores, up to 8)")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar (it is only drawn on a terminal anyway)")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    # Everything that can be checked without reading images is checked first.
    out = check_output_path(args.out, "--out") if args.out else None
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.workers is not None and args.workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {args.workers}")
    loaded = open_model(chosen_run(args.model), args.device, args.inference_threads)
    top_k = check_top_k(args.top_k, len(loaded.meta["classes"]))
    groups = collect_inputs(args.inputs)
    result = predict_inputs(loaded, groups, top_k, args.batch_size, args.workers, args.progress)
    for s in result.skipped:
        log.warning("skipped unreadable image %s: %s", s["file"], s["reason"])
    summary = (f"{len(result.rows)} image(s) predicted, {len(result.skipped)} unreadable "
               f"skipped, by {loaded.file}")
    if out is None:
        print(format_table(result.rows))
        log.info(summary)
        return 0
    write_rows(out, result.rows, {"model": str(loaded.file), "classes": list(loaded.meta["classes"]),
                                  "top_k": top_k, "images": result.total,
                                  "predicted": len(result.rows), "skipped": result.skipped})
    print(f"wrote {out}: {summary}")
    return 0
