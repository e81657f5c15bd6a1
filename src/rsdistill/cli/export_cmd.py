"""``rsdistill export``: a checkpoint as a deployable file, parity-checked before it is written."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rsdistill.cli.common import RUN_HELP, add_data_args, chosen_run
from rsdistill.cli.model_settings import model_settings
from rsdistill.runtime.checkpoint import resolve_model_path
from rsdistill.export import EXPORT_FORMATS, PARITY_ATOL, export_checkpoint


def register(sub) -> None:
    p = sub.add_parser("export", help="export a checkpoint (ONNX) with its preprocessing contract",
                       description="Writes the model with a dynamic batch dimension and its "
                                   "preprocessing (input size, 1/255 scaling, mean/std, class "
                                   "names) in the file's metadata, after checking that it "
                                   f"reproduces the checkpoint's logits within {PARITY_ATOL:g} "
                                   "and every predicted class on the run's test images.")
    p.add_argument("checkpoint", help=RUN_HELP + ", or a model.pt")
    p.add_argument("--format", default="onnx", choices=EXPORT_FORMATS.names(),
                   help="file format (default onnx)")
    p.add_argument("--opset", type=int, help="ONNX opset (default 17)")
    p.add_argument("--out", help="output file (default: <run dir>/model.onnx)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_data_args(p, dataset_required=False, training=False)
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    model_file = resolve_model_path(chosen_run(args.checkpoint))
    # Parity runs on the run's test split (config.yaml, data options override); a bare
    # model.pt without --dataset falls back to seeded random inputs, which the output says.
    data = model_settings(args, model_file).data
    result = export_checkpoint(model_file, args.format, Path(args.out).expanduser() if args.out else None,
                               args.opset, data)
    if args.json:
        print(json.dumps({"path": str(result.path), "format": result.format, "opset": result.opset,
                          "bytes": result.size_bytes, "parity": result.parity.to_dict()}))
        return 0
    print(result.parity.describe())
    print(f"wrote {result.path} ({result.format}, opset {result.opset}, {result.size_bytes:,} bytes)")
    return 0
