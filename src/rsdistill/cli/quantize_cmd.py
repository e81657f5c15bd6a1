"""``rsdistill quantize``: an int8 ONNX model, written only when its test accuracy holds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rsdistill.cli.common import RUN_HELP, chosen_run
from rsdistill.cli.model_settings import add_measurement_args, model_settings, require_data
from rsdistill.runtime.checkpoint import resolve_model_path
from rsdistill.errors import CheckpointError
from rsdistill.export.quantize import ACTIVATION_TYPES, CALIBRATION_METHODS, QuantizeRequest, quantize_onnx

_R = QuantizeRequest()
SCHEMES = {"int8": "S8S8", "uint8": "U8S8"}


def register(sub) -> None:
    p = sub.add_parser("quantize", help="int8 ONNX model by ONNX Runtime static quantisation",
                       description="Static quantisation with ONNX Runtime: QDQ format, "
                                   "per-channel int8 weights, int8 or uint8 activations "
                                   "(whichever runs faster on this machine), activation "
                                   "ranges calibrated on training images drawn with a fixed seed. "
                                   "Prints test accuracy and macro F1, file sizes and batch-1 "
                                   "latency of the fp32 and int8 models, timed side by side; "
                                   "writes <model>.int8.onnx only if accuracy drops by at most "
                                   "--max-drop points.")
    p.add_argument("model", help=RUN_HELP + ", a model.pt (its model.onnx, exported first if "
                                 "missing) or an fp32 model.onnx")
    p.add_argument("--out", help="output file (default: model.int8.onnx beside the fp32 model)")
    p.add_argument("--calibration-images", type=int, default=_R.calibration_images,
                   help=f"training images the activation ranges come from (default "
                        f"{_R.calibration_images}; all of them if the split is smaller)")
    p.add_argument("--calibration-method", choices=CALIBRATION_METHODS.names(), default=_R.method,
                   help=f"how ranges are chosen from them (default {_R.method})")
    p.add_argument("--calibration-seed", type=int, default=_R.seed,
                   help=f"seed that draws the calibration images (default {_R.seed})")
    p.add_argument("--activations", choices=("auto", *ACTIVATION_TYPES.names()),
                   default=_R.activations,
                   help="activation type: auto (default: whichever of the two runs faster on "
                        "this machine, measured once and cached), int8 (S8S8, ONNX Runtime's "
                        "first choice; slower than fp32 on AVX2 CPUs) or uint8 (U8S8)")
    p.add_argument("--max-drop", type=float, default=_R.max_drop,
                   help=f"largest test accuracy drop in points that is accepted (default {_R.max_drop:g})")
    p.add_argument("--allow-drop", action="store_true",
                   help="write the int8 model even if it drops more than --max-drop")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_measurement_args(p, only=("latency_runs", "inference_threads"), helps={
        "latency_runs": "timed batch-1 calls per model",
        "inference_threads": "onnxruntime intra-op threads for both models"})
    p.set_defaults(func=cmd_quantize)


def _kib(n: int) -> str:
    return f"{n / 1024:.1f}"


def cmd_quantize(args: argparse.Namespace) -> int:
    request = QuantizeRequest(calibration_images=args.calibration_images, method=args.calibration_method,
                              seed=args.calibration_seed, activations=args.activations,
                              max_drop=args.max_drop,
                              allow_drop=args.allow_drop)
    source = Path(chosen_run(args.model))
    if source.suffix.lower() == ".onnx":
        if not source.is_file():
            raise CheckpointError(f"ONNX model {source} does not exist")
        model_file = source
    else:
        model_file = resolve_model_path(source)
    settings = model_settings(args, model_file)
    result = quantize_onnx(model_file, request, require_data(settings, model_file),
                           Path(args.out) if args.out else None, settings.inference_threads,
                           settings.latency_runs)
    result.pop("blob")
    if args.json:
        print(json.dumps(result))
        return 0
    if result["exported"]:
        print(f"exported {result['source']} ({result['exported']})")
    q = result["quantization"]
    print(f"calibration: {q['calibration_images']} training images (seed {q['seed']}), {q['method']}; "
          f"{q['format']}, {q['activations']} activations and per-channel int8 weights "
          f"({SCHEMES[q['activations']]}), onnxruntime {q['onnxruntime']}")
    print(f"activations: {q['activations_why']}")
    print(f"{'':<6} {'accuracy %':>10} {'macro F1 %':>10} {'size KiB':>9} "
          f"{'latency p50 ms':>14}   (test split: {result['test_images']} images; batch 1, "
          f"{result['threads']} thread(s), timed side by side)")
    for name in ("fp32", "int8"):
        r = result[name]
        print(f"{name:<6} {100 * r['accuracy']:>10.2f} {100 * r['f1_macro']:>10.2f} "
              f"{_kib(r['bytes']):>9} {r['latency_ms_p50']:>14.3f}")
    f, i = result["fp32"], result["int8"]
    print(f"{'change':<6} {100 * (i['accuracy'] - f['accuracy']):>+10.2f} "
          f"{100 * (i['f1_macro'] - f['f1_macro']):>+10.2f} {result['size_ratio']:>8.2f}x "
          f"{i['latency_ms_p50'] / f['latency_ms_p50']:>13.2f}x")
    if result["accuracy_drop_pt"] > result["max_drop_pt"]:
        print(f"note: accuracy dropped {result['accuracy_drop_pt']:.2f} pt, more than --max-drop "
              f"{result['max_drop_pt']:g}; written because of --allow-drop")
    print(f"wrote {result['out']}")
    return 0
