"""What the teacher costs a student epoch: none, a small 32 px teacher, a large pretrained
teacher at the data's resolution run on every batch, and the same teacher cached.

    python bench/teacher_cost.py --data-root ../shared/datasets --out runs/teacher_cost \
        --small-teacher runs/ucm32/teacher_resnet8x4_s0 --large-teacher runs/gap/teacher128_s0

Each condition trains the same resnet8 student at 32 px for ``--epochs`` epochs (no crops,
so the large teacher's eight views per image can be cached) in one process with
``--threads`` intra-op threads, one condition after the other; the table gives seconds per
student epoch and, for the cached teacher, the one-time cost of its pass over every view
(amortised over a ``--amortise``-epoch run in the last column).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from rsdistill.data.module import DataConfig
from rsdistill.experiments.procedures import run_training
from rsdistill.experiments.records import DistillConfig
from rsdistill.runtime.environment import cpu_name, machine_load
from rsdistill.training.config import TrainConfig


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="ucmerced")
    ap.add_argument("--data-root", default="../shared/datasets")
    ap.add_argument("--out", default="runs/teacher_cost")
    ap.add_argument("--small-teacher", required=True)
    ap.add_argument("--large-teacher", required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--amortise", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = DataConfig(dataset=args.dataset, data_root=args.data_root, image_size=32, crop=False)
    conditions = [
        ("no teacher (scratch)", None, "off"),
        ("small teacher, every batch", args.small_teacher, "off"),
        ("large teacher, every batch", args.large_teacher, "off"),
        ("large teacher, cached views", args.large_teacher, "auto"),
    ]
    print(f"# {cpu_name()}, {args.threads} thread(s), load {machine_load()} at start; resnet8 "
          f"at 32 px, {args.epochs} epochs per condition\n")
    print("| teacher | seconds per student epoch | one-time teacher pass s | "
          f"per epoch over {args.amortise} epochs |")
    print("|---|---|---|---|")
    for i, (label, teacher, cache) in enumerate(conditions):
        out = Path(args.out) / f"c{i}"
        train = TrainConfig(model="resnet8", epochs=args.epochs, teacher_cache=cache,
                            latency_runs=5, inference_threads=1)
        distill = DistillConfig(teacher=teacher, alpha=0.5) if teacher else None
        m = run_training(out, data, train, distill, resume=True, progress=False)
        per_epoch = m["run"]["seconds_per_epoch"]
        once = m["run"].get("teacher_cache_seconds") or 0.0
        print(f"| {label} | {per_epoch:.2f} | {once:.1f} | "
              f"{per_epoch + once / args.amortise:.2f} |", flush=True)
    print(f"\nload at end {machine_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
