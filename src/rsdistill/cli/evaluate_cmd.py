"""``rsdistill evaluate``: every metric of a checkpoint or run directory on any split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rsdistill.cli.common import add_data_args, data_config
from rsdistill.data.module import prepare_data
from rsdistill.engine.checkpoint import load_model, resolve_model_path
from rsdistill.engine.precision import PRECISIONS, resolve_precision
from rsdistill.engine.runs import load_run_config
from rsdistill.engine.trainer import evaluate_model
from rsdistill.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a checkpoint or run directory",
                       description="Accuracy, precision/recall/F1 (macro, weighted, per class), "
                                   "confusion matrix, inference time, parameters and FLOPs.")
    p.add_argument("checkpoint", help="run directory or model.pt")
    p.add_argument("--split", dest="eval_split", default="test", choices=("train", "val", "test"))
    p.add_argument("--json", action="store_true", help="print the full metrics as JSON")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="precision for the metrics (default: the run's training precision)")
    p.add_argument("--inference-precision", choices=PRECISIONS)
    p.add_argument("--device")
    p.add_argument("--latency-runs", type=int)
    p.add_argument("--inference-threads", type=int,
                   help="CPU threads for the latency figures (0 = all cores)")
    add_data_args(p, dataset_required=False)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    model_file = resolve_model_path(args.checkpoint)
    model, meta = load_model(model_file)
    run_dir = model_file.parent
    if (run_dir / "config.yaml").is_file():
        base_data, train_cfg, _ = load_run_config(run_dir)
        cfg = data_config(args, base_data)
        precision_name = args.precision or train_cfg.precision
        timing_name = args.inference_precision or train_cfg.inference_precision
        device = args.device or train_cfg.device
        runs = args.latency_runs or train_cfg.latency_runs
        threads = train_cfg.inference_threads
    else:
        if not args.dataset:
            raise ConfigError(f"{model_file} has no config.yaml beside it; pass --dataset and data options")
        cfg = data_config(args)
        precision_name, timing_name = args.precision or "auto", args.inference_precision or "fp32"
        device, runs, threads = args.device or "auto", args.latency_runs or 100, 0
    cfg.image_size = meta["image_size"]
    data = prepare_data(cfg)
    if list(data.classes) != list(meta["classes"]):
        raise ConfigError(f"{model_file} was trained on other classes than {cfg.dataset} provides here")
    metrics = evaluate_model(model, meta, data, args.eval_split, resolve_precision(precision_name, device),
                             resolve_precision(timing_name, device), runs,
                             threads if args.inference_threads is None else args.inference_threads)
    metrics["checkpoint"] = str(model_file)
    if args.json:
        print(json.dumps(metrics))
        return 0
    print(f"{Path(model_file)}  on {cfg.dataset} {args.eval_split} ({metrics['num_samples']} images)")
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted"):
        print(f"  {key:<18} {metrics[key]:.4f}")
    inf = metrics["inference"]
    print(f"  params {metrics['params']:,}  FLOPs {metrics['flops'] / 1e6:.1f}M")
    print(f"  latency p50 {inf['latency_ms_p50']:.2f} ms  p95 {inf['latency_ms_p95']:.2f} ms  "
          f"throughput {inf['throughput_img_s']:.0f} img/s  test split {inf['test_seconds']:.2f} s "
          f"({inf['device']}, {inf['precision']}, {inf['threads']} threads)")
    return 0
