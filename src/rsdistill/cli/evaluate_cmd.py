"""``rsdistill evaluate``: every metric of a checkpoint, run directory or exported model."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from rsdistill.cli.common import RUN_HELP, chosen_run
from rsdistill.cli.model_settings import ModelSettings, add_measurement_args, model_settings, require_data
from rsdistill.data.module import prepare_data
from rsdistill.models import load_model
from rsdistill.runtime.checkpoint import resolve_model_path
from rsdistill.runtime.precision import resolve_precision
from rsdistill.evaluation.evaluate import evaluate_model
from rsdistill.errors import CheckpointError, ConfigError
from rsdistill.export import format_for_file
from rsdistill.evaluation.predictions import check_output_path, split_rows, write_rows
from rsdistill.export.contract import normalizer_from_meta

# An exported graph is fp32 on the CPU whatever the run trained in; options the user
# gives still win (and a contradictory one is refused by the backend).
_EXPORTED_DEFAULTS = {"precision": "fp32", "inference_precision": "fp32", "device": "cpu"}


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a checkpoint, run directory or exported model",
                       description="Accuracy, precision/recall/F1 (macro, weighted, per class), "
                                   "confusion matrix, inference time, parameters and FLOPs. "
                                   "An exported model (model.onnx) is run by its runtime, fed "
                                   "by the preprocessing stored in its metadata.")
    p.add_argument("checkpoint", help=RUN_HELP + ", a model.pt or a model.onnx")
    p.add_argument("--split", dest="eval_split", default="test", choices=("train", "val", "test"),
                   help="which split of the run's data to score (default test)")
    p.add_argument("--json", action="store_true", help="print the full metrics as JSON")
    p.add_argument("--predictions", metavar="FILE",
                   help="also write one row per image of the split (file, true class, predicted "
                        "class, probability) to FILE.csv or FILE.json")
    add_measurement_args(p)
    p.set_defaults(func=cmd_evaluate)


def _open(path: str, args: argparse.Namespace) -> tuple[object, dict, Path, ModelSettings, bool]:
    """(model or backend, meta, file, settings, exported?) for a checkpoint or exported file."""
    fmt = format_for_file(path)
    if fmt is None:
        model_file = resolve_model_path(path)
        model, meta = load_model(model_file)
        return model, meta, model_file, model_settings(args, model_file), False
    model_file = Path(path).expanduser()
    if not model_file.is_file():
        raise CheckpointError(f"exported model {model_file} does not exist")
    settings = model_settings(args, model_file)
    for key, value in _EXPORTED_DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(settings, key, value)
    backend = fmt.load(model_file, settings.inference_threads)
    return backend, backend.meta, model_file, settings, True


def cmd_evaluate(args: argparse.Namespace) -> int:
    rows_file = check_output_path(args.predictions, "--predictions") if args.predictions else None
    model, meta, model_file, cfg, exported = _open(chosen_run(args.checkpoint), args)
    data_cfg = require_data(cfg, model_file)
    data_cfg.image_size = meta["image_size"]
    data = prepare_data(data_cfg)
    if list(data.classes) != list(meta["classes"]):
        raise ConfigError(f"{model_file} was trained on other classes than {data_cfg.dataset} provides here")
    if exported:
        # The file's own contract, not statistics re-fitted from the data, feeds it.
        data = dataclasses.replace(data, normalizer=normalizer_from_meta(meta))
    metrics = evaluate_model(model, meta, data, args.eval_split,
                             resolve_precision(cfg.precision, cfg.device),
                             resolve_precision(cfg.inference_precision, cfg.device),
                             cfg.latency_runs, cfg.inference_threads)
    metrics["checkpoint"] = str(model_file)
    if meta.get("quantization"):
        metrics["quantization"] = meta["quantization"]
    if rows_file is not None:
        # The precision the metrics were computed in, so the rows agree with them.
        rows = split_rows(model, data, args.eval_split, resolve_precision(cfg.precision, cfg.device))
        write_rows(rows_file, rows, {"model": str(model_file), "dataset": data_cfg.dataset,
                                     "split": args.eval_split, "accuracy": metrics["accuracy"]})
        metrics["predictions_file"] = str(rows_file)
    if args.json:
        print(json.dumps(metrics))
        return 0
    print(f"{Path(model_file)}  on {data_cfg.dataset} {args.eval_split} ({metrics['num_samples']} images)")
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted"):
        print(f"  {key:<18} {metrics[key]:.4f}")
    inf = metrics["inference"]
    print(f"  params {metrics['params']:,}  FLOPs {metrics['flops'] / 1e6:.1f}M")
    print(f"  latency p50 {inf['latency_ms_p50']:.2f} ms  p95 {inf['latency_ms_p95']:.2f} ms  "
          f"throughput {inf['throughput_img_s']:.0f} img/s  test split {inf['test_seconds']:.2f} s "
          f"({inf['backend']}, {inf['device']}, {inf.get('quantized', inf['precision'])}, "
          f"{inf['threads']} threads)")
    if rows_file is not None:
        print(f"wrote {rows_file} ({metrics['num_samples']} rows)")
    return 0
