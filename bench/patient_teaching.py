"""Does any teaching beat a *patient* student trained from scratch? (issue 22)

    python bench/patient_teaching.py --teacher runs/teacher128 --data-root ../shared/datasets \
        --out runs/patient --epochs 300 --seeds 5 --jobs 2

Every arm trains the same student (``--student``, resnet8) at ``--size`` px (32) for the same
epochs, optimiser, schedule and seeds 0..N-1; a seed fixes the split, the initial weights
and the batch order, so the students of one seed differ by their teaching alone. Arms
(``--arms``, default all but ``fm_transfer``):

* ``scratch``       — ``train``: flips + 90° rotations, no crops.
* ``scratch_views`` — ``train`` with the function-matching views: mild crops
  (``--crop-pad 0.0625``) and Mixup on half the images.
* ``kd``            — KD (T = 4, α = 0.5) from ``--teacher`` (e.g. Lite0 at 128 px reading
  its own 128 px view); flips/rotations only, the teacher's logits of the 8 views cached.
* ``kd_sv``         — the same KD from the **student-view teacher** (``--sv-teacher``: Lite0
  fine-tuned on 32 px images upsampled to 128, ``train --source-size 32``), which reads the
  student's own 32 px view upsampled (``--teacher-view upsampled``).
* ``kd_sv_a09``     — ``kd_sv`` at α = 0.9.
* ``fm_sv_bank``    — function matching (KL on exactly the student's view, T = 1) from the
  student-view teacher on the ``scratch_views`` views, its logits read from a view bank of
  ``--bank-rounds`` rounds.
* ``fm_transfer``   — ``fm_sv_bank`` plus ``--transfer-limit`` teacher-labelled images of
  ``--transfer-set``.

The student-view teacher is trained first when ``--sv-teacher`` does not exist yet (the
Lite0 ImageNet fine-tuning recipe at 128 px from 32 px sources). Runs go seed-major (seed 0
of every arm, then seed 1, ...) through ``--jobs`` processes side by side, so a run stopped
by ``--deadline`` still leaves whole seeds to pair. Each distilled row is paired by seed with
the **better** of the two scratch arms (the patient student with its best augmentation):
mean difference, its std, the 95 % t interval and whether it excludes 0
(``experiments/stats.paired_difference``). Finished runs are read, not retrained: rerun the
same command to continue. Prints a Markdown table, writes ``OUT/patient_teaching.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rsdistill.experiments.stats import mean_std, paired_difference
from rsdistill.io import write_json
from rsdistill.report.curves import curve_blocks

FM_VIEWS = ("--crop-pad", "0.0625", "--mix", "mixup", "--mix-prob", "0.5")
FLIPS_ONLY = ("--no-crop",)


@dataclass(frozen=True)
class Arm:
    title: str
    args: tuple[str, ...]
    teacher: str | None = None      # None (scratch), "hr" (--teacher) or "sv" (--sv-teacher)
    scratch: bool = False


def arms(a: argparse.Namespace) -> dict[str, Arm]:
    bank = ("--teacher-cache", "bank", "--bank-rounds", str(a.bank_rounds))
    sv = ("--teacher-view", "upsampled")
    return {
        "scratch": Arm("scratch (flips, rotations)", FLIPS_ONLY, scratch=True),
        "scratch_views": Arm("scratch (+ mild crops, Mixup p 0.5)", FM_VIEWS, scratch=True),
        "kd": Arm("kd from the 128 px teacher, T 4, α 0.5", (*FLIPS_ONLY, "--method", "kd"), "hr"),
        "kd_sv": Arm("kd from the student-view teacher, T 4, α 0.5",
                     (*FLIPS_ONLY, *sv, "--method", "kd"), "sv"),
        "kd_sv_a09": Arm("kd from the student-view teacher, T 4, α 0.9",
                         (*FLIPS_ONLY, *sv, "--method", "kd", "--alpha", "0.9"), "sv"),
        "fm_sv_bank": Arm(f"fm from the student-view teacher, bank of {a.bank_rounds} rounds",
                          (*FM_VIEWS, *sv, *bank, "--method", "fm"), "sv"),
        "fm_transfer": Arm(f"fm_sv_bank + {a.transfer_limit} {a.transfer_set} images",
                           (*FM_VIEWS, *sv, *bank, "--method", "fm", "--transfer-set",
                            a.transfer_set, "--transfer-limit", str(a.transfer_limit)), "sv"),
    }


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "rsdistill", *args]


def common(a: argparse.Namespace) -> list[str]:
    return ["--data-root", a.data_root, "--image-size", str(a.size), "--epochs", str(a.epochs),
            "--device", a.device, "--no-progress", "--inference-threads", "1",
            "--latency-runs", "20"]


def run_command(a: argparse.Namespace, arm: Arm, seed: int, out: Path) -> list[str]:
    resume = ["--resume"] if out.is_dir() else []
    if arm.scratch:
        return cli("train", "--dataset", a.dataset, "--model", a.student, *common(a), *arm.args,
                   "--seed", str(seed), "--out", str(out), *resume)
    teacher = a.teacher if arm.teacher == "hr" else a.sv_teacher
    return cli("distill", "--teacher", teacher, "--student", a.student, *common(a), *arm.args,
               "--seed", str(seed), "--out", str(out), *resume)


def train_sv_teacher(a: argparse.Namespace) -> None:
    if (Path(a.sv_teacher) / "metrics.json").is_file():
        return
    resume = ["--resume"] if Path(a.sv_teacher).is_dir() else []
    cmd = cli("train", "--dataset", a.dataset, "--data-root", a.data_root, "--model", a.sv_model,
              *shlex.split(a.sv_train_args), "--image-size", str(a.sv_teacher_size),
              "--source-size", str(a.size), "--device", a.device, "--no-progress",
              "--inference-threads", "1", "--latency-runs", "20", "--seed", "0",
              "--out", a.sv_teacher, *resume)
    print("$", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)


def run_dir(a: argparse.Namespace, arm: str, seed: int) -> Path:
    return Path(a.out) / arm / f"seed{seed}"


def metrics(run: Path) -> dict | None:
    f = run / "metrics.json"
    return json.loads(f.read_text()) if f.is_file() else None


def run_all(a: argparse.Namespace, chosen: dict[str, Arm]) -> None:
    """Seed-major queue through ``--jobs`` processes; no new run starts once the deadline
    could not hold it (estimated from the runs finished so far), unfinished ones are stopped
    at the deadline and resume on the next call."""
    start = time.monotonic()
    queue = [(name, seed) for seed in range(a.seeds) for name in chosen
             if metrics(run_dir(a, name, seed)) is None]
    running: dict[tuple[str, int], tuple[subprocess.Popen, float]] = {}
    durations: list[float] = []
    logs = Path(a.out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    while queue or running:
        now = time.monotonic() - start
        for key, (proc, began) in list(running.items()):
            if proc.poll() is not None:
                running.pop(key)
                took = time.monotonic() - began
                ok = proc.returncode == 0
                durations += [took] if ok else []
                print(f"{'done' if ok else 'FAILED'} {key[0]} seed {key[1]} in {took:.0f} s "
                      f"(rc {proc.returncode}, log {logs}/{key[0]}-seed{key[1]}.log)", flush=True)
        if a.deadline and now > a.deadline:
            for key, (proc, _) in running.items():
                proc.terminate()
                print(f"deadline: stopped {key[0]} seed {key[1]}", flush=True)
            for proc, _ in running.values():
                proc.wait()
            break
        expected = max(durations) if durations else 0.0
        while queue and len(running) < a.jobs and not (a.deadline and now + expected > a.deadline):
            name, seed = queue.pop(0)
            cmd = run_command(a, chosen[name], seed, run_dir(a, name, seed))
            print("$", " ".join(cmd[2:]), flush=True)
            # The child holds its own copy of the log's descriptor: ours closes at once.
            with open(logs / f"{name}-seed{seed}.log", "a") as log:
                running[(name, seed)] = (subprocess.Popen(cmd, stdout=log, env=env,
                                                          stderr=subprocess.STDOUT),
                                         time.monotonic())
        if not running:
            break
        time.sleep(1.0)
    print(f"{len(queue)} runs not started, {time.monotonic() - start:.0f} s", flush=True)


def table(a: argparse.Namespace, chosen: dict[str, Arm]) -> tuple[str, dict]:
    accs = {name: {s: m["accuracy"] for s in range(a.seeds)
                   if (m := metrics(run_dir(a, name, s)))} for name in chosen}
    scratch = [n for n, arm in chosen.items() if arm.scratch and accs[n]]
    best = max(scratch, key=lambda n: mean_std(list(accs[n].values()))[0]) if scratch else None
    lines = ["| arm | student | seeds | accuracy % | paired Δ vs best scratch (pt) | 95 % CI | "
             "beyond noise |", "|---|---|---|---|---|---|---|"]
    summary = {"baseline": best, "rows": {}}
    for name, arm in chosen.items():
        if not accs[name]:
            continue
        m, s = mean_std(list(accs[name].values()))
        d = paired_difference(accs[name], accs[best]) if best and name != best else None
        summary["rows"][name] = {"title": arm.title, "accuracy": accs[name], "mean": m,
                                 "std": s, "paired": d}
        head = f"| {name} | {arm.title}{' (baseline)' if name == best else ''} | " \
               f"{len(accs[name])} | {100 * m:.2f} ± {100 * s:.2f} |"
        if d is None or d["mean"] is None:
            lines.append(f"{head} – | – | – |")
            continue
        ci = f"± {100 * d['ci95']:.2f}" if d["ci95"] is not None else "one seed"
        std = f" ± {100 * d['std']:.2f}" if d["std"] is not None else ""
        verdict = {True: "yes", False: "no", None: "cannot tell"}[d["distinguishable"]]
        lines.append(f"{head} {100 * d['mean']:+.2f}{std} | {ci} | {verdict} |")
    return "\n".join(lines), summary


def curves(a: argparse.Namespace, chosen: dict[str, Arm]) -> str:
    """``OUT/figures/epoch_curves.png`` (every arm's validation accuracy per epoch, mean ±
    std over seeds, scratch first) and its plateau table as Markdown."""
    out = Path(a.out)
    groups = [(f"{name}: {arm.title}", sorted((out / name).glob("seed*")))
              for name, arm in sorted(chosen.items(), key=lambda kv: not kv[1].scratch)]
    blocks = curve_blocks([(f"{a.student} @ {a.size} px, {a.epochs} epochs", groups)],
                          out / "figures")
    table = next((b for b in blocks if b.kind == "table"), None)
    if table is None:
        return ""
    rows = ["| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)]
    return "\n".join(rows + ["| " + " | ".join(r) + " |" for r in table.rows])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher", required=True, help="teacher run directory (e.g. Lite0 at 128 px)")
    ap.add_argument("--sv-teacher", default="runs/teacher_sv32",
                    help="student-view teacher run directory, trained here when absent")
    ap.add_argument("--sv-model", default="timm:tf_efficientnet_lite0")
    ap.add_argument("--sv-teacher-size", type=int, default=128)
    ap.add_argument("--sv-train-args", default="--pretrained imagenet",
                    help="more options of the student-view teacher's training")
    ap.add_argument("--dataset", default="ucmerced")
    ap.add_argument("--data-root", default="../shared/datasets")
    ap.add_argument("--out", default="runs/patient")
    ap.add_argument("--student", default="resnet8")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--arms", default="scratch,scratch_views,kd,kd_sv,kd_sv_a09,fm_sv_bank")
    ap.add_argument("--bank-rounds", type=int, default=30)
    ap.add_argument("--transfer-set", default="aid")
    ap.add_argument("--transfer-limit", type=int, default=3000)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--jobs", type=int, default=1, help="runs side by side")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads of each run")
    ap.add_argument("--deadline", type=float, default=0.0,
                    help="seconds: start no run that would not finish by then, stop the rest")
    ap.add_argument("--report-only", action="store_true",
                    help="train nothing: the table and figure of the runs in --out")
    a = ap.parse_args()
    every = arms(a)
    unknown = [n for n in a.arms.split(",") if n not in every]
    if unknown:
        ap.error(f"unknown arm {unknown[0]}; choose from {', '.join(every)}")
    chosen = {n: every[n] for n in a.arms.split(",")}
    if not a.report_only and any(arm.teacher == "sv" for arm in chosen.values()):
        train_sv_teacher(a)
    if not a.report_only:
        run_all(a, chosen)
    text, summary = table(a, chosen)
    print(text)
    (out := Path(a.out)).mkdir(parents=True, exist_ok=True)
    plateau = curves(a, chosen)
    print(f"\n{plateau}\nfigure: {out / 'figures' / 'epoch_curves.png'}" if plateau else "")
    write_json(Path(a.out) / "patient_teaching.json", {"settings": vars(a), **summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
