"""Batch-1 ONNX Runtime latency of several trained models, side by side in one process.

    python bench/onnx_side_by_side.py runs/pareto/resnet8_32/seed0/alpha0.50_beta0 \
        runs/p_big/mobilenetv2_x0_5_32/seed0/alpha0.50_beta0 runs/kd/model.int8.onnx \
        --teacher runs/pt/teacher128_s0

The models of separate studies (e.g. a 3-seed Pareto and a 1-seed one of larger students)
are timed here as `rsdistill pareto` times its own: each exported to ONNX in memory (an
exported `model.onnx` or quantized `model.int8.onnx` is timed as it is), one
intra-op thread, interleaved rounds whose order reverses every round, so a change in
machine load hits every model alike. Prints one row per model with its ratio to the
teacher (or to the slowest model without one).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rsdistill.errors import RsdistillError
from rsdistill.export.formats import format_for_file
from rsdistill.export.predictor import open_model
from rsdistill.models import load_model
from rsdistill.report.pareto_report import time_models
from rsdistill.runtime.rundir import MODEL_FILE


def model_file(path: str) -> Path:
    p = Path(path)
    return p / MODEL_FILE if p.is_dir() else p


def model_name(file: Path) -> str:
    """``model@size``, `` int8`` added for a quantized ONNX file, `` onnx`` for another
    exported file (timed as it is, not exported again)."""
    exported = format_for_file(file)
    if exported is None:
        meta = load_model(file)[1]
        return f"{meta['model']}@{meta['image_size']}"
    meta = open_model(file, threads=1).meta
    kind = "int8" if meta.get("quantization") else exported.name
    return f"{meta['model']}@{meta['image_size']} {kind}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories or model.pt files")
    ap.add_argument("--teacher", help="the reference run directory or model.pt")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    try:
        files = {}
        for run in args.runs:
            name = model_name(model_file(run))
            # A second run of the same architecture and size would silently replace the first.
            if name in files:
                raise RsdistillError(f"{files[name]} and {model_file(run)} are both {name}: "
                                     "they time alike, pass one of them")
            files[name] = model_file(run)
        if args.teacher:
            files["teacher"] = model_file(args.teacher)
        timing = time_models(files, args.threads, rounds=args.rounds)
    except RsdistillError as exc:
        print(f"onnx_side_by_side: {exc}", file=sys.stderr)
        return 2
    ms = timing["latency_ms"]
    ref = ms["teacher"] if args.teacher else max(ms.values())
    print(f"{timing['cpu']}, {timing['threads']} thread(s), {timing['rounds']} rounds of "
          f"{timing['runs_per_round']} runs, load {timing['load_before']} before, "
          f"{timing['load_after']} after\n")
    print("| model | latency ms (ORT, batch 1, p50) | × faster than the reference |")
    print("|---|---|---|")
    for name, value in sorted(ms.items(), key=lambda kv: kv[1]):
        print(f"| {name} | {value:.3f} | {ref / value:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
