"""Does any teaching beat a *patient* student trained from scratch? (issue 22)

    python bench/patient_teaching.py --teacher runs/teacher128 --data-root ../shared/datasets \
        --out runs/patient --epochs 300 --seeds 5 --regimes plain,fm_bank,fm_transfer

Every regime trains resnet8 (``--student``) at 32 px (``--size``) for the same epochs,
optimiser, schedule and seeds 0..N-1; a seed fixes the split, the initial weights and the
batch order, so students of one seed differ by their teaching alone:

* ``plain``       — ``rsdistill compare --methods kd``: flips + 90° rotations, no crops, so
  the teacher's logits of the eight views are computed once; its ``scratch`` member is the
  student from scratch with the same augmentation.
* ``fm_bank``     — ``compare --methods fm``: function matching (KL on exactly the student's
  view) with mild crops and Mixup on half the images, the teacher's logits read from a
  view bank of ``--bank-rounds`` rounds; ``scratch`` gets the same crops and Mixup.
* ``fm_transfer`` — ``fm_bank`` plus ``--transfer-limit`` teacher-labelled images of
  ``--transfer-set`` (``distill`` per seed: a transfer set has no labels for scratch).

Each distilled row is paired by seed with the **better** of the two scratch baselines (the
patient student with its best augmentation), and its difference is given with its std and
95 % t interval (``experiments/stats.paired_difference``). Finished runs are read, not
retrained: rerun the same command to continue. ``--backend ray`` sends the compare trials
to a Ray cluster (docs/cluster.md). Prints a Markdown table and writes
``OUT/patient_teaching.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rsdistill.experiments.stats import mean_std, paired_difference
from rsdistill.io import write_json

FM_VIEWS = ["--crop-pad", "0.0625", "--mix", "mixup", "--mix-prob", "0.5"]


def rsdistill(*args: str) -> None:
    cmd = [sys.executable, "-m", "rsdistill", *args]
    print("$", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)


def accuracies(folder: Path, seeds: int) -> dict[int, float]:
    """``{seed: test accuracy}`` of the finished runs ``folder/seed<k>/metrics.json``."""
    out = {}
    for seed in range(seeds):
        f = folder / f"seed{seed}" / "metrics.json"
        if f.is_file():
            out[seed] = json.loads(f.read_text())["accuracy"]
    return out


def run_regimes(a: argparse.Namespace) -> dict[str, dict[int, float]]:
    out = Path(a.out)
    common = ["--teacher", a.teacher, "--data-root", a.data_root, "--student", a.student,
              "--image-size", str(a.size), "--epochs", str(a.epochs), "--no-progress",
              "--inference-threads", "1", "--latency-runs", "20"]
    backend = ["--backend", a.backend] + (["--ray-address", a.ray_address] if a.ray_address else [])
    bank = ["--teacher-cache", "bank", "--bank-rounds", str(a.bank_rounds)]
    rows: dict[str, dict[int, float]] = {}
    regimes = a.regimes.split(",")
    if "plain" in regimes:
        rsdistill("compare", *common, *backend, "--methods", "kd", "--no-crop",
                  "--seeds", str(a.seeds), "--out", str(out / "plain"), "--resume")
        rows["scratch (flips, rotations)"] = accuracies(out / "plain" / "scratch", a.seeds)
        rows["kd, T = 4, α = 0.5, 8 cached views"] = accuracies(out / "plain" / "kd", a.seeds)
    if "fm_bank" in regimes:
        rsdistill("compare", *common, *backend, *FM_VIEWS, *bank, "--methods", "fm",
                  "--seeds", str(a.seeds), "--out", str(out / "fm_bank"), "--resume")
        rows["scratch (+ mild crops, Mixup p 0.5)"] = accuracies(out / "fm_bank" / "scratch", a.seeds)
        rows[f"fm, view bank of {a.bank_rounds} rounds"] = accuracies(out / "fm_bank" / "fm", a.seeds)
    if "fm_transfer" in regimes:
        for seed in range(a.seeds):
            run = out / "fm_transfer" / f"seed{seed}"
            rsdistill("distill", *common, *FM_VIEWS, *bank, "--method", "fm", "--seed", str(seed),
                      "--transfer-set", a.transfer_set, "--transfer-limit", str(a.transfer_limit),
                      "--out", str(run), *(["--resume"] if run.is_dir() else []))
        rows[f"fm, bank + {a.transfer_limit} {a.transfer_set} images"] = accuracies(
            out / "fm_transfer", a.seeds)
    return rows


def table(rows: dict[str, dict[int, float]]) -> tuple[str, dict]:
    scratch = {k: v for k, v in rows.items() if k.startswith("scratch") and v}
    best = max(scratch, key=lambda k: mean_std(list(scratch[k].values()))[0]) if scratch else None
    lines = ["| student | seeds | accuracy % | paired Δ vs best scratch (pt) | 95 % CI | beyond noise |",
             "|---|---|---|---|---|---|"]
    summary = {"baseline": best, "rows": {}}
    for name, accs in rows.items():
        if not accs:
            continue
        m, s = mean_std(list(accs.values()))
        d = paired_difference(accs, rows[best]) if best and name != best else None
        summary["rows"][name] = {"accuracy": accs, "mean": m, "std": s, "paired": d}
        if d is None or d["mean"] is None:
            lines.append(f"| {name}{' (baseline)' if name == best else ''} | {len(accs)} | "
                         f"{100 * m:.2f} ± {100 * s:.2f} | – | – | – |")
            continue
        ci = f"± {100 * d['ci95']:.2f}" if d["ci95"] is not None else "one seed"
        std = f" ± {100 * d['std']:.2f}" if d["std"] is not None else ""
        verdict = {True: "yes", False: "no", None: "cannot tell"}[d["distinguishable"]]
        lines.append(f"| {name} | {d['seeds']} | {100 * m:.2f} ± {100 * s:.2f} | "
                     f"{100 * d['mean']:+.2f}{std} | {ci} | {verdict} |")
    return "\n".join(lines), summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher", required=True, help="teacher run directory")
    ap.add_argument("--data-root", default="../shared/datasets")
    ap.add_argument("--out", default="runs/patient")
    ap.add_argument("--student", default="resnet8")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--regimes", default="plain,fm_bank,fm_transfer")
    ap.add_argument("--bank-rounds", type=int, default=30)
    ap.add_argument("--transfer-set", default="aid")
    ap.add_argument("--transfer-limit", type=int, default=3000)
    ap.add_argument("--backend", default="local", choices=("local", "ray"))
    ap.add_argument("--ray-address")
    a = ap.parse_args()
    text, summary = table(run_regimes(a))
    print(text)
    write_json(Path(a.out) / "patient_teaching.json", {"settings": vars(a), **summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
