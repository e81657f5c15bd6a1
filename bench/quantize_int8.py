"""Int8 static quantisation of trained runs: accuracy, macro F1, file size and batch-1
latency of fp32 vs int8, for each activation type and calibration method.

    OMP_NUM_THREADS=1 python bench/quantize_int8.py RUN [RUN ...] [--methods minmax,entropy,percentile]
        [--activations int8,uint8] [--latency-runs 1000] [--threads 1] [--json out.json]

Each run is quantised in memory (nothing is written into it) exactly as
``rsdistill quantize RUN --calibration-method M --activations A`` would, and the fp32 and
int8 graphs are timed side by side in this one process with the same thread count.
Prints one Markdown row per run and setting, then mean ± std over runs per setting.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import onnxruntime
import torch

from rsdistill.experiments.records import load_run_config
from rsdistill.export.quantize import QuantizeRequest, quantize_onnx


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    vnni = [f for f in flags if "vnni" in f]
    return f"{fields.get('Model name', '?').strip()}, VNNI flags: {', '.join(vnni) or 'none'}"


def mean_std(values: list[float]) -> str:
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="trained run directories (config.yaml + model.pt)")
    ap.add_argument("--methods", default="minmax,entropy,percentile")
    ap.add_argument("--activations", default="int8,uint8")
    ap.add_argument("--calibration-images", type=int, default=300)
    ap.add_argument("--latency-runs", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write every record here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# {cpu_model()}; onnxruntime {onnxruntime.__version__}, torch {torch.__version__}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
          f"{' / '.join(f'{x:.2f}' for x in __import__('os').getloadavg())}")
    records = []
    print("| run | activations | method | fp32 acc % | int8 acc % | Δ pt | fp32 F1 % | int8 F1 % "
          "| fp32 KiB | int8 KiB | size × | fp32 ms | int8 ms | latency × |")
    print("|" + "---|" * 14)
    for run in args.runs:
        data_cfg = load_run_config(Path(run))[0]
        for activations in args.activations.split(","):
            for method in args.methods.split(","):
                request = QuantizeRequest(calibration_images=args.calibration_images, method=method,
                                          activations=activations, allow_drop=True)
                r = quantize_onnx(Path(run), request, data_cfg, threads=args.threads,
                                  latency_runs=args.latency_runs, write=False)
                r.pop("blob")
                f, i = r["fp32"], r["int8"]
                rec = {"run": run, "activations": activations, "method": method, **r}
                records.append(rec)
                print(f"| {Path(run).name} | {activations} | {method} | {100 * f['accuracy']:.2f} | "
                      f"{100 * i['accuracy']:.2f} | {0.0 - r['accuracy_drop_pt']:+.2f} | {100 * f['f1_macro']:.2f} | "
                      f"{100 * i['f1_macro']:.2f} | {f['bytes'] / 1024:.1f} | {i['bytes'] / 1024:.1f} | "
                      f"{r['size_ratio']:.3f} | {f['latency_ms_p50']:.3f} | {i['latency_ms_p50']:.3f} | "
                      f"{i['latency_ms_p50'] / f['latency_ms_p50']:.2f} |", flush=True)
    print("\n| activations | method | fp32 acc % | int8 acc % | Δ pt | fp32 F1 % | int8 F1 % | size × "
          "| fp32 ms | int8 ms | latency × |")
    print("|" + "---|" * 11)
    for activations in args.activations.split(","):
        for method in args.methods.split(","):
            rs = [r for r in records if r["activations"] == activations and r["method"] == method]
            print(f"| {activations} | {method} | {mean_std([100 * r['fp32']['accuracy'] for r in rs])} | "
                  f"{mean_std([100 * r['int8']['accuracy'] for r in rs])} | "
                  f"{mean_std([0.0 - r['accuracy_drop_pt'] for r in rs])} | "
                  f"{mean_std([100 * r['fp32']['f1_macro'] for r in rs])} | "
                  f"{mean_std([100 * r['int8']['f1_macro'] for r in rs])} | "
                  f"{statistics.fmean(r['size_ratio'] for r in rs):.3f} | "
                  f"{mean_std([r['fp32']['latency_ms_p50'] for r in rs])} | "
                  f"{mean_std([r['int8']['latency_ms_p50'] for r in rs])} | "
                  f"{statistics.fmean(r['int8']['latency_ms_p50'] / r['fp32']['latency_ms_p50'] for r in rs):.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()
