"""Wall time of an α sweep trained fused (one pass per seed) vs the same students as
sequential single `distill` runs, with identical settings.

    python bench/sweep_fused.py --teacher runs/ucm32/teacher_resnet8x4_s0 --epochs 5

Both sides train the same students (same seeds, data, epochs) and evaluate each the same
way; the fused students equal the sequential ones (tests/experiments/test_experiments_sweep.py), so
only the time differs. Prints both wall times and their ratio (goal: fused ≤ 0.5×).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from rsdistill.experiments.records import DistillConfig
from rsdistill.experiments.procedures import run_training
from rsdistill.experiments.teacher import teacher_data_config
from rsdistill.config import from_dict
from rsdistill.data.module import DataConfig
from rsdistill.experiments.grid import SweepConfig, parse_alphas
from rsdistill.experiments.sweep import run_sweep
from rsdistill.training.config import TrainConfig


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--student", default="resnet8")
    ap.add_argument("--alphas", default="0:0.5:0.05")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--latency-runs", type=int, default=100)
    args = ap.parse_args()
    data = from_dict(DataConfig, teacher_data_config(args.teacher), "data")
    alphas = parse_alphas(args.alphas)
    train = TrainConfig(model=args.student, epochs=args.epochs, seed=0,
                        latency_runs=args.latency_runs)
    work = Path(tempfile.mkdtemp(prefix="rsdistill-sweep-bench-"))
    try:
        start = time.perf_counter()
        run_sweep(work / "fused", data, train,
                  SweepConfig(teacher=args.teacher, alphas=alphas, seeds=1), progress=False)
        fused = time.perf_counter() - start
        start = time.perf_counter()
        for a in alphas:
            run_training(work / f"single_{a}", data, train,
                         DistillConfig(teacher=args.teacher, alpha=a), progress=False)
        sequential = time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| students | epochs | fused s | sequential s | fused / sequential |")
    print("|---|---|---|---|---|")
    print(f"| {len(alphas)} × {args.student} | {args.epochs} | {fused:.1f} | {sequential:.1f} | "
          f"{fused / sequential:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
