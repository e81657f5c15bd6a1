"""kill -9 at many random points of a short real run, resume, compare with an uninterrupted run.

    python bench/faults.py --points 40                       # train on UC Merced, 40 points
    python bench/faults.py --scenario sweep --points 20      # a fused sweep (teacher made first)
    python bench/faults.py --points 4 --epochs 1             # smoke test

The scenario runs once uninterrupted with ``RSDISTILL_FAULT_TRACE`` set, which records every
fault point it passes: each training step and each atomic write, by file name. Each trial
draws a phase (a training step, a checkpoint write, the cache write, a report or history
write) and then one of that phase's points, and runs the same command in a fresh run and
cache directory with ``RSDISTILL_KILL_AT=<point>@<n>``: the process SIGKILLs itself the
n-th time it passes the point. Then the command is rerun with --resume, and the trial
passes when

* the killed run really died by SIGKILL there, and no process of it is left (found by an
  environment tag in /proc),
* the resumed run exits 0 and its directory holds the same files as the reference's, with
  every tensor of every .pt file (weights, optimiser state, RNG states, the best-model
  snapshot) bit-identical, and every JSON, CSV and YAML file equal but for timing fields,
* no temporary file (``.<name>.<pid>.<random>.tmp``) and no lock file remains in the run
  or the cache.

Data: UC Merced from ``--data-root`` (the compact copy in ../shared/datasets), 16 px,
resnet8, batch 64; the whole scenario is a few seconds of training on purpose, so that
many points fit in minutes. Prints one line per trial and a summary; ``--json`` keeps all.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml

from rsdistill.io import is_temp_file_name

SRC = Path(__file__).resolve().parents[1] / "src"
PHASES = {
    "step": lambda p: p == "step",
    "checkpoint": lambda p: p in ("write:last.pt", "write:model.pt"),
    "cache": lambda p: fnmatch.fnmatchcase(p, "write:*px-*.pt"),
    "report": lambda p: p in ("write:metrics.json", "write:epochs.csv", "write:results.json",
                              "write:results.csv", "write:results_aggregate.csv"),
}
# Fields that hold a clock reading: they differ between any two runs.
TIMING = {"inference", "train_seconds", "seconds_per_epoch", "epoch_seconds", "latency_ms_p50",
          "test_seconds", "latency_ms_p50_mean", "latency_ms_p50_std", "test_seconds_mean",
          "test_seconds_std"}
# And where each trial keeps its own cache.
LOCATION = {"cache_dir", "cache_path"}


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            **extra}


def run(argv: list[str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rsdistill.cli.main", *argv], capture_output=True,
                          text=True, env=env(**extra), timeout=1800)


class Scenario:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.teacher = None
        if args.scenario == "sweep":
            self.teacher = work / "teacher"
            done = run(["train", *self._data(work / "teacher-cache"), "--model", "resnet8",
                        *self._train(), "--out", str(self.teacher)])
            if done.returncode != 0:
                raise SystemExit(f"the teacher failed: {done.stderr}")

    def _data(self, cache: Path) -> list[str]:
        return ["--dataset", "ucmerced", "--data-root", str(self.args.data_root), "--cache-dir",
                str(cache), "--image-size", "16", "--workers", "1"]

    def _train(self) -> list[str]:
        return ["--epochs", str(self.args.epochs), "--batch-size", "64", "--latency-runs", "5",
                "--no-progress"]

    def argv(self, out: Path, cache: Path) -> list[str]:
        if self.teacher is None:
            return ["train", *self._data(cache), "--model", "resnet8", *self._train(),
                    "--out", str(out)]
        return ["sweep", "--teacher", str(self.teacher), *self._data(cache), "--student",
                "resnet8", *self._train(), "--alphas", "0,0.5", "--seeds", "2", "--jobs", "1",
                "--out", str(out)]


# ----------------------------------------------------------------------------- comparison

def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in TIMING | LOCATION}
    if isinstance(obj, (list, tuple)):
        return [_strip(v) for v in obj]
    return obj


def _pt_leaves(obj, prefix: str, out: dict) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in TIMING:
                _pt_leaves(v, f"{prefix}/{k}", out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _pt_leaves(v, f"{prefix}/{i}", out)
    else:
        out[prefix] = obj


def _same_leaf(a, b) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and \
            a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    return a == b


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(fh)]


def differences(run_dir: Path, ref: Path) -> list[str]:
    """What differs between two run trees, timing aside (empty: the same result)."""
    files = {p.relative_to(run_dir) for p in run_dir.rglob("*") if p.is_file()}
    ref_files = {p.relative_to(ref) for p in ref.rglob("*") if p.is_file()}
    diffs = [f"only in one: {p}" for p in sorted(files ^ ref_files)]
    for rel in sorted(files & ref_files):
        a, b = run_dir / rel, ref / rel
        if rel.suffix == ".pt":
            la, lb = {}, {}
            _pt_leaves(torch.load(a, map_location="cpu", weights_only=True), "", la)
            _pt_leaves(torch.load(b, map_location="cpu", weights_only=True), "", lb)
            bad = sorted(k for k in la.keys() | lb.keys()
                         if k not in la or k not in lb or not _same_leaf(la[k], lb[k]))
            diffs += [f"{rel}: {k}" for k in bad[:3]]
        elif rel.suffix == ".json":
            if _strip(json.loads(a.read_text())) != _strip(json.loads(b.read_text())):
                diffs.append(str(rel))
        elif rel.suffix == ".csv":
            if _csv_rows(a) != _csv_rows(b):
                diffs.append(str(rel))
        elif rel.suffix == ".yaml":
            if _strip(yaml.safe_load(a.read_text())) != _strip(yaml.safe_load(b.read_text())):
                diffs.append(str(rel))
    return diffs


def tagged(tag: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"RSDISTILL_BENCH_TAG={tag}".encode() in environ:
                found.append(int(entry))
    return found


def leftovers(*folders: Path) -> list[str]:
    return [str(p) for f in folders if f.is_dir() for p in f.rglob("*")
            if is_temp_file_name(p.name) or p.name == ".rsdistill.lock"]


# ----------------------------------------------------------------------------- trials

def draw(points: list[str], rng: random.Random) -> tuple[str, str]:
    """(phase, ``<point>@<n>``): a phase with points, then one of its points."""
    phase = rng.choice(sorted(ph for ph, match in PHASES.items() if any(map(match, points))))
    at = rng.choice([i for i, p in enumerate(points) if PHASES[phase](p)])
    return phase, f"{points[at]}@{points[:at + 1].count(points[at])}"


def trial(scenario: Scenario, ref: Path, kill_at: str, folder: Path) -> dict:
    out, cache, tag = folder / "run", folder / "cache", uuid.uuid4().hex
    start = time.perf_counter()
    killed = subprocess.run([sys.executable, "-m", "rsdistill.cli.main", *scenario.argv(out, cache)],
                            capture_output=True, text=True, timeout=1800,
                            env=env(RSDISTILL_KILL_AT=kill_at, RSDISTILL_BENCH_TAG=tag))
    deadline = time.monotonic() + 30
    while tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    stray = tagged(tag)
    for pid in stray:  # never leave them running, whatever the verdict
        os.kill(pid, signal.SIGKILL)
    resumed = run([*scenario.argv(out, cache), "--resume"])
    diffs = differences(out, ref) if resumed.returncode == 0 else ["resume failed"]
    left = leftovers(out, cache)
    result = {"kill_at": kill_at, "killed_rc": killed.returncode, "stray_processes": len(stray),
              "resume_rc": resumed.returncode, "differences": diffs[:5], "leftovers": left[:5],
              "seconds": round(time.perf_counter() - start, 1)}
    result["ok"] = (killed.returncode == -signal.SIGKILL and not stray and
                    resumed.returncode == 0 and not diffs and not left)
    if resumed.returncode != 0:
        result["resume_error"] = resumed.stderr.strip().splitlines()[-1:]
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", choices=("train", "sweep"), default="train")
    p.add_argument("--points", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--data-root", type=Path,
                   default=Path(os.environ.get("RSDISTILL_TEST_DATA", "../shared/datasets")))
    p.add_argument("--kill-at", action="append", metavar="POINT@N",
                   help="try these points instead of drawing them (repeatable)")
    p.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    p.add_argument("--json", type=Path, help="write every trial here")
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="rsdistill-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    scenario = Scenario(args, work)
    trace = work / "trace.txt"
    trace.unlink(missing_ok=True)
    ref = work / "reference"
    done = run(scenario.argv(ref / "run", ref / "cache"), RSDISTILL_FAULT_TRACE=str(trace))
    if done.returncode != 0:
        raise SystemExit(f"the reference run failed: {done.stderr}")
    points = [line.split(" ", 1)[1] for line in trace.read_text().splitlines()]
    print(f"{args.scenario}: the reference run passed {len(points)} fault points "
          f"({', '.join(f'{ph} {sum(map(PHASES[ph], points))}' for ph in PHASES)})")
    rng = random.Random(args.seed)
    trials = []
    chosen = [(next((ph for ph, m in PHASES.items() if m(k.rpartition("@")[0])), "?"), k)
              for k in args.kill_at or []]
    for i in range(len(chosen) or args.points):
        phase, kill_at = chosen[i] if chosen else draw(points, rng)
        folder = work / f"trial{i}"
        result = {"phase": phase, **trial(scenario, ref / "run", kill_at, folder)}
        trials.append(result)
        print(f"{i + 1:3d} {phase:<10} {kill_at:<42} killed rc {result['killed_rc']:>3}  "
              f"resume rc {result['resume_rc']}  {'ok' if result['ok'] else 'FAILED'}  "
              f"({result['seconds']} s)" + ("" if result["ok"] else f"  {result}"), flush=True)
        shutil.rmtree(folder, ignore_errors=True)
    passed = sum(t["ok"] for t in trials)
    distinct = len({t["kill_at"] for t in trials})
    by_phase = {ph: sum(t["phase"] == ph for t in trials) for ph in PHASES}
    print(f"{passed}/{len(trials)} trials passed ({distinct} distinct points; "
          + ", ".join(f"{ph} {n}" for ph, n in by_phase.items()) + ")")
    if args.json:
        args.json.write_text(json.dumps({
            "scenario": args.scenario, "seed": args.seed, "epochs": args.epochs,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "points_in_reference": len(points),
            "passed": passed, "trials": trials}, indent=2))
    shutil.rmtree(work / "reference", ignore_errors=True)
    sys.exit(0 if passed == len(trials) else 1)


if __name__ == "__main__":
    main()
