"""Teaching across the resolution gap: which teaching lets a 32 px student learn from a
128 px pretrained teacher.

    python bench/resolution_gap.py --data-root ../shared/datasets --out runs/gap \
        --teacher-native runs/gap/teacher128_s0 --teacher-up runs/gap/teacher128from32_s0 \
        --groups own,upsampled,up_teacher,assistant --seeds 3 --epochs 60

Every group is one fused sweep per seed, so its α = 0 member is the student trained from
scratch on exactly the same batches, epochs and seeds as the distilled members (the fair
baseline). Students: resnet8 at 32 px, flips and 90° rotations, no crops (the teacher's
logits of the eight views are then computed once, see training/teacher_cache.py).

* ``own``        — the 128 px teacher reads its own 128 px view of each scene.
* ``upsampled``  — the same teacher reads the student's 32 px view upsampled to 128 px
  (resolution-consistent teaching with a teacher trained on full-detail images).
* ``up_teacher`` — a teacher fine-tuned on 32 px views upsampled to 128 px
  (``--source-size 32``) reads them: it knows only what the student can see.
* ``own_crop``   — ``own`` with random crops too: every crop is a new view, so the teacher
  runs on every batch (no cache).
* ``assistant``  — teacher → assistant (``--assistant``, default resnet8x4 at 64 px; KD, its
  own view) → student.

Prints a Markdown table; finished runs are reused (rerun to continue).
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace
from pathlib import Path

from rsdistill.data.module import DataConfig
from rsdistill.experiments.assistant import AssistantConfig, train_assistant
from rsdistill.experiments.grid import SweepConfig
from rsdistill.experiments.stats import by_seed, paired_difference
from rsdistill.experiments.sweep import run_sweep
from rsdistill.losses import MethodConfig
from rsdistill.training.config import TrainConfig

GROUPS = {
    "own": dict(teacher="native", view="own"),
    "upsampled": dict(teacher="native", view="upsampled"),
    "up_teacher": dict(teacher="up", view="own"),
    "assistant": dict(teacher="native", view="own", assistant=True),
    "own_crop": dict(teacher="native", view="own", crop=True),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="ucmerced")
    ap.add_argument("--data-root", default="../shared/datasets")
    ap.add_argument("--out", default="runs/gap")
    ap.add_argument("--teacher-native", required=True, help="teacher run at the data's resolution")
    ap.add_argument("--teacher-up", help="teacher run fine-tuned with --source-size 32")
    ap.add_argument("--groups", default="own,upsampled,up_teacher,assistant")
    ap.add_argument("--student", default="resnet8")
    ap.add_argument("--student-size", type=int, default=32)
    ap.add_argument("--alphas", default="0,0.5,0.9")
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--method", default="kd", help="any distillation method on logits (kd, dkd)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--assistant", default="resnet8x4@64", help="the assistant, MODEL@SIZE")
    ap.add_argument("--assistant-epochs", type=int, default=60)
    ap.add_argument("--jobs", type=int, default=0)
    args = ap.parse_args()

    out = Path(args.out)
    teachers = {"native": args.teacher_native, "up": args.teacher_up}
    alphas = [float(a) for a in args.alphas.split(",")]
    train = TrainConfig(model=args.student, epochs=args.epochs, latency_runs=20,
                        inference_threads=1)
    rows = []
    for name in args.groups.split(","):
        g = GROUPS[name]
        teacher = teachers[g["teacher"]]
        if not teacher:
            raise SystemExit(f"group {name} needs --teacher-{g['teacher']}")
        data = DataConfig(dataset=args.dataset, data_root=args.data_root,
                          image_size=args.student_size, crop=g.get("crop", False),
                          teacher_view=g["view"])
        if "assistant" in g:
            model, _, size = args.assistant.partition("@")
            size = int(size) if size else args.student_size
            teacher = train_assistant(out / name, AssistantConfig(model, size, args.assistant_epochs),
                                      teacher, data, replace(train, seed=0), progress=False)
        sweep = SweepConfig(teacher=teacher, alphas=alphas, betas=["0"], seeds=args.seeds,
                            method=MethodConfig(method=args.method, temperature=args.temperature))
        summary = run_sweep(out / name, data, train, sweep, resume=True, progress=False,
                            jobs=args.jobs)
        rows.append((name, summary))

    print(f"\n{args.student} at {args.student_size} px, {args.epochs} epochs, {args.seeds} seeds, "
          f"{args.method} at T = {args.temperature:g}; "
          f"accuracy % (mean ± std); lead = best α minus the α = 0 member of the same sweep "
          f"and seed, mean ± std over the seeds; beyond noise = its 95 % t interval "
          f"(half-width given) excludes 0\n")
    print("| teaching | teacher test % | " + " | ".join(f"α = {a:g}" for a in alphas)
          + " | paired lead of the best α | beyond noise |")
    print("|---|---|" + "---|" * len(alphas) + "---|---|")
    for name, summary in rows:
        agg = {r["alpha"]: r for r in summary["aggregate"]}
        cells = [f"{100 * agg[a]['accuracy_mean']:.2f} ± {100 * agg[a]['accuracy_std']:.2f}"
                 for a in alphas]
        base = agg.get(0.0)
        best = max((agg[a] for a in alphas if a > 0), key=lambda r: r["accuracy_mean"])
        lead = noise = "–"
        if base is not None:
            p = paired_difference(*(by_seed([r for r in summary["rows"] if r["alpha"] == a])
                                    for a in (best["alpha"], 0.0)))
            spread = "" if p["std"] is None else f" ± {100 * p['std']:.2f}"
            lead = f"{100 * p['mean']:+.2f}{spread} (α = {best['alpha']:g})"
            noise = ("one seed: cannot tell" if p["distinguishable"] is None else
                     f"{'yes' if p['distinguishable'] else 'no'} (± {100 * p['ci95']:.2f})")
        teacher = summary["teacher"] or {}
        print(f"| {name} | {100 * teacher.get('accuracy', float('nan')):.2f} | "
              + " | ".join(cells) + f" | {lead} | {noise} |")
    secs = [statistics.fmean(r["seconds_per_epoch"] for r in s["rows"]) for _, s in rows]
    print("\nseconds per student epoch (fused members share each pass): "
          + ", ".join(f"{n} {s:.2f}" for (n, _), s in zip(rows, secs)))
    (out / "summary.json").write_text(json.dumps({n: s["aggregate"] for n, s in rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
