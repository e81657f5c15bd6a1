"""``rsdistill compress``: the first weight layer replaced by its truncated SVD (new run dir)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rsdistill.cli.common import RUN_HELP, chosen_run
from rsdistill.cli.model_settings import add_measurement_args, model_settings, require_data
from rsdistill.runtime.checkpoint import resolve_model_path
from rsdistill.runtime.precision import resolve_precision
from rsdistill.export.compress import WEIGHTINGS, CompressRequest, compress_checkpoint


def register(sub) -> None:
    p = sub.add_parser("compress", help="low-rank first layer: truncated SVD of W₁ as two layers",
                       description="Replaces the first Conv2d/Linear W₁ by a k×k conv to R channels "
                                   "and a 1×1 conv R→out (two Linear layers for a linear W₁), the "
                                   "best rank-R approximation of W₁, and reports size, FLOPs and "
                                   "test accuracy before and after. Writes a new run directory "
                                   "that evaluate and export read unchanged.")
    p.add_argument("checkpoint", help=RUN_HELP + ", or a model.pt")
    p.add_argument("--rank", type=int, help="rank R to keep (1 … full rank of W₁)")
    p.add_argument("--energy", type=float,
                   help="keep the smallest R whose singular values hold this share of Σs² (e.g. 0.99)")
    p.add_argument("--weighting", choices=WEIGHTINGS, default="data",
                   help="how the rank-R factors are chosen (the rank itself always comes from W₁'s "
                        "spectrum): data (default) minimises the error after the BatchNorm that "
                        "follows W₁ on the training images' patches, with a bias keeping the mean "
                        "output; batchnorm weighs by that BatchNorm's |γ|/σ only; none is the plain "
                        "SVD of W₁")
    p.add_argument("--out", help="new run directory (default: <run dir>-rank<R> beside it)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace what rsdistill wrote in --out (other files there are kept)")
    p.add_argument("--json", action="store_true", help="print the compression record as JSON")
    add_measurement_args(p)
    p.set_defaults(func=cmd_compress)


def cmd_compress(args: argparse.Namespace) -> int:
    request = CompressRequest(rank=args.rank, energy=args.energy, weighting=args.weighting)
    model_file = resolve_model_path(chosen_run(args.checkpoint))
    s = model_settings(args, model_file)
    rec = compress_checkpoint(model_file, request, require_data(s, model_file),
                              resolve_precision(s.precision, s.device),
                              resolve_precision(s.inference_precision, s.device),
                              s.latency_runs, s.inference_threads,
                              Path(args.out).expanduser() if args.out else None,
                              overwrite=args.overwrite)
    if args.json:
        print(json.dumps(rec))
        return 0
    print(f"{rec['layer']} {tuple(rec['weight_shape'])}: rank {rec['rank']} of {rec['full_rank']} "
          f"(energy kept {rec['energy_kept']:.4f}, relative error {rec['relative_error']:.4f}, "
          f"weighting {rec['weighting']}" + (f" by {rec['weighted_by']}" if rec['weighted_by'] else "") + ")")
    print(f"  {rec['layer']} params {rec['layer_params_before']:,} -> {rec['layer_params_after']:,}   "
          f"model params {rec['params_before']:,} -> {rec['params_after']:,}   "
          f"FLOPs {rec['flops_before'] / 1e6:.3f}M -> {rec['flops_after'] / 1e6:.3f}M")
    print(f"  test accuracy {rec['accuracy_before']:.4f} -> {rec['accuracy_after']:.4f}")
    if rec["rank"] >= rec["break_even_rank"]:
        # A thin stem (e.g. 3 input channels) saves nothing at a high rank; say so.
        print(f"  note: no saving at rank {rec['rank']}; the two layers are smaller than "
              f"{rec['layer']} only below rank {rec['break_even_rank']}")
    print(f"wrote {rec['out']}")
    return 0
