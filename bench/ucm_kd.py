"""UC Merced 32 px: teacher, student from scratch and distilled student, several seeds.

    python bench/ucm_kd.py --data-root ../shared/datasets --out runs/bench_ucm_kd

Every student (scratch and distilled) gets the same epochs, schedule, augmentation
and seed set. Prints a Markdown table of mean ± std over seeds; per-run metrics stay
in each run directory. Finished runs are reused, so an interrupted bench resumes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from rsdistill.data.module import DataConfig
from rsdistill.experiments.records import DistillConfig
from rsdistill.experiments.procedures import run_training
from rsdistill.training.config import TrainConfig


def run(out: Path, data: DataConfig, train: TrainConfig, distill: DistillConfig | None = None) -> dict:
    metrics_file = out / "metrics.json"
    if metrics_file.is_file():
        return json.loads(metrics_file.read_text())
    return run_training(out, data, train, distill, resume=True, progress=False)


def mean_std(values: list[float]) -> str:
    m = statistics.mean(values)
    s = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * m:.2f} ± {100 * s:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default="../shared/datasets")
    ap.add_argument("--out", default="runs/bench_ucm_kd")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed-list", help="comma-separated seeds to run now (default: 0..seeds-1); "
                    "lets two processes train different seeds in parallel")
    ap.add_argument("--teacher", default="resnet8x4")
    ap.add_argument("--student", default="resnet8")
    ap.add_argument("--teacher-epochs", type=int, default=120)
    ap.add_argument("--student-epochs", type=int, default=60)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--only", choices=("teacher", "scratch", "kd"), action="append")
    args = ap.parse_args()
    out = Path(args.out)
    data = DataConfig(dataset="ucmerced", data_root=args.data_root, image_size=32)
    rows: dict[str, list[dict]] = {"teacher": [], "scratch": [], "kd": []}
    stages = args.only or ["teacher", "scratch", "kd"]
    seeds = [int(s) for s in args.seed_list.split(",")] if args.seed_list else range(args.seeds)
    for seed in seeds:
        teacher_dir = out / f"teacher_{args.teacher}_s{seed}"
        if "teacher" in stages:
            rows["teacher"].append(run(teacher_dir, data, TrainConfig(
                model=args.teacher, epochs=args.teacher_epochs, seed=seed)))
        if "scratch" in stages:
            rows["scratch"].append(run(out / f"scratch_{args.student}_s{seed}", data, TrainConfig(
                model=args.student, epochs=args.student_epochs, seed=seed)))
        if "kd" in stages:
            rows["kd"].append(run(
                out / f"kd_{args.student}_a{args.alpha}_T{args.temperature}_s{seed}", data,
                TrainConfig(model=args.student, epochs=args.student_epochs, seed=seed),
                DistillConfig(teacher=str(teacher_dir), alpha=args.alpha,
                              temperature=args.temperature)))
        print(f"seed {seed} done", file=sys.stderr, flush=True)
    print("| run | epochs | params | test accuracy % | macro F1 % | latency p50 ms (batch 1) | s/epoch |")
    print("|---|---|---|---|---|---|---|")
    names = {"teacher": f"teacher {args.teacher}", "scratch": f"student {args.student} from scratch",
             "kd": f"student {args.student} KD α={args.alpha} T={args.temperature}"}
    for key, ms in rows.items():
        if not ms:
            continue
        lat = statistics.median(m["inference"]["latency_ms_p50"] for m in ms)
        spe = statistics.mean(m["run"]["seconds_per_epoch"] for m in ms)
        print(f"| {names[key]} | {ms[0]['run']['epochs']} | {ms[0]['params']:,} | "
              f"{mean_std([m['accuracy'] for m in ms])} | {mean_std([m['f1_macro'] for m in ms])} | "
              f"{lat:.2f} | {spe:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
