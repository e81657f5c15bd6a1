"""Cross-resolution distillation: a 32 px student from a 32 px and from a 64 px teacher.

    python bench/xres.py --dataset ucmerced --data-root ../shared/datasets --out runs/xres \
        --teacher32 runs/ucm32/teacher_resnet8x4_s0

Conditions (every student: same student model, epochs, schedule, seeds and augmentation
as its from-scratch baseline; each group is one fused sweep, so the α = 0 member *is*
the scratch student trained on exactly the same batches):

* ``t32``      — teacher at 32 px; α ∈ {0, 0.5}: scratch and plain KD.
* ``t64``      — teacher at 64 px, each model on its own view of the same augmented
  scenes; α ∈ {0.5, 1}: KD and teacher-only targets.
* ``t64_mix``  — as ``t64`` plus Mixup on the shared batch; α ∈ {0, 0.5, 1}: scratch with
  Mixup (its fair baseline), KD with Mixup, and function matching (α = 1: the teacher's
  prediction on the mixed image is the only target).
* ``t64_nomix`` — ``t64_mix`` without Mixup (its counterpart on long schedules).
* ``t32_indep``, ``t64_indep`` — KD (α = 0.5) with the teacher's view augmented
  independently of the student's (``teacher_augment: independent``): the ablation of
  consistent teaching. Their scratch baseline is ``t32``'s α = 0 member.

Teachers are trained here (or passed in) with ``--teacher-epochs``; one teacher per
resolution serves every student seed. Prints Markdown tables; finished runs are reused.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import yaml

from rsdistill.data.module import DataConfig
from rsdistill.experiments.procedures import run_training
from rsdistill.experiments.grid import SweepConfig
from rsdistill.experiments.sweep import run_sweep
from rsdistill.training.config import TrainConfig

GROUPS = {
    "t32": dict(teacher="32", alphas=[0.0, 0.5], mix="none"),
    "t64": dict(teacher="64", alphas=[0.5, 1.0], mix="none"),
    "t64_mix": dict(teacher="64", alphas=[0.0, 0.5, 1.0], mix="mixup"),
    "t64_nomix": dict(teacher="64", alphas=[0.0, 0.5, 1.0], mix="none"),
    "t32_indep": dict(teacher="32", alphas=[0.5], mix="none", teacher_augment="independent"),
    "t64_indep": dict(teacher="64", alphas=[0.5], mix="none", teacher_augment="independent"),
}


def teacher_run(out: Path, data: DataConfig, size: int, epochs: int, model: str) -> Path:
    if not (out / "metrics.json").is_file():
        run_training(out, replace(data, image_size=size), TrainConfig(model=model, epochs=epochs),
                     resume=True, progress=False)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="ucmerced")
    ap.add_argument("--data-root", default="../shared/datasets")
    ap.add_argument("--out", default="runs/xres")
    ap.add_argument("--teacher-model", default="resnet8x4")
    ap.add_argument("--student", default="resnet8")
    ap.add_argument("--teacher-epochs", type=int, default=120)
    ap.add_argument("--student-epochs", type=int, default=60)
    ap.add_argument("--high-res", type=int, default=64, help="the high-resolution teacher's input")
    ap.add_argument("--teacher32", help="existing 32 px teacher run (else trained here)")
    ap.add_argument("--teacher64", help="existing high-resolution teacher run (else trained here)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--mix-alpha", type=float, default=1.0)
    ap.add_argument("--groups", default=",".join(GROUPS), help="which student groups to run")
    ap.add_argument("--jobs", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    data = DataConfig(dataset=args.dataset, data_root=args.data_root, image_size=32)
    teachers = {
        "32": Path(args.teacher32) if args.teacher32 else
        teacher_run(out / "teacher32", data, 32, args.teacher_epochs, args.teacher_model),
        "64": Path(args.teacher64) if args.teacher64 else
        teacher_run(out / f"teacher{args.high_res}", data, args.high_res, args.teacher_epochs,
                    args.teacher_model),
    }
    results = {}
    for name in args.groups.split(","):
        g = GROUPS[name]
        sweep = SweepConfig(teacher=str(teachers[g["teacher"]]), alphas=g["alphas"], betas=["0"],
                            seeds=args.seeds)
        group_data = replace(data, mix=g["mix"], mix_alpha=args.mix_alpha,
                             teacher_augment=g.get("teacher_augment", "same"))
        results[name] = run_sweep(out / name, group_data,
                                  TrainConfig(model=args.student, epochs=args.student_epochs),
                                  sweep, resume=True, progress=False, jobs=args.jobs)

    print(f"## {args.dataset}: teachers ({args.teacher_model}, {args.teacher_epochs} epochs)\n")
    print("| teacher | input px | test accuracy % | params | batch-1 latency ms (p50) |")
    print("|---|---|---|---|---|")
    for key, path in teachers.items():
        m = json.loads((path / "metrics.json").read_text())
        size = yaml.safe_load((path / "config.yaml").read_text())["data"]["image_size"]
        print(f"| {m['run']['model']} | {size} | {100 * m['accuracy']:.2f} | "
              f"{m['params']:,} | {m['inference']['latency_ms_p50']:.2f} |")
    print(f"\n## 32 px {args.student} students ({args.student_epochs} epochs, {args.seeds} seeds)\n")
    print("| group | teacher | Mixup | teacher's augmentation | α | test accuracy % | macro F1 % |")
    print("|---|---|---|---|---|---|---|")
    for name, summary in results.items():
        g = GROUPS[name]
        size = 32 if g["teacher"] == "32" else args.high_res
        for a in summary["aggregate"]:
            print(f"| {name} | {size} px | {g['mix']} | {g.get('teacher_augment', 'same')} | "
                  f"{a['alpha']:.2f} | "
                  f"{pm_from(a, 'accuracy')} | {pm_from(a, 'f1_macro')} |")
    return 0


def pm_from(agg: dict, key: str) -> str:
    return f"{100 * agg[f'{key}_mean']:.2f} ± {100 * agg[f'{key}_std']:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
