"""kill -9 at random points of a short real run, then --resume (issue 16, done-when).

A reference run, uninterrupted, records every fault point it passes
(``RSDISTILL_FAULT_TRACE``: each training step, each atomic write by file name). For each
phase (a training step, a checkpoint write, the cache write, a report write) one of its
points is drawn with a fixed seed, and a fresh run of the same command is SIGKILLed there
(``RSDISTILL_KILL_AT=<point>@<n>``, the n-th time it passes that point). The command is
then rerun with --resume. Every time: the result equals the reference run bit for bit
(weights, optimiser state, metrics and history but for timing), no process of the killed
run is left, and no temporary or lock file remains in the run or the cache.
bench/faults.py draws many more points the same way.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

from rsdistill.io import is_temp_file_name

PHASES = {
    "training step": lambda p: p == "step",
    "checkpoint write": lambda p: p in ("write:last.pt", "write:model.pt"),
    "cache write": lambda p: fnmatch.fnmatchcase(p, "write:*px-*.pt"),
    "report write": lambda p: p in ("write:metrics.json", "write:epochs.csv"),
}
SEED = 16
TIMING = {"inference", "versions"}
RUN_TIMING = {"train_seconds", "seconds_per_epoch"}


def env(**extra: str) -> dict[str, str]:
    src = Path(__file__).resolve().parents[2] / "src"
    return {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", **extra}


def command(tree: Path, cache: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rsdistill.cli.main", "train", "--dataset", "folder",
            "--data-root", str(tree), "--cache-dir", str(cache), "--image-size", "16",
            "--workers", "1", "--model", "resnet8", "--epochs", "3", "--batch-size", "8",
            "--latency-runs", "1", "--no-progress", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_tree3):
    """(run dir, the fault points it passed in order) of an uninterrupted run."""
    root = tmp_path_factory.mktemp("fault-ref")
    trace = root / "trace.txt"
    done = subprocess.run(command(tiny_tree3, root / "cache", root / "run"), capture_output=True,
                          text=True, timeout=300, env=env(RSDISTILL_FAULT_TRACE=str(trace)))
    assert done.returncode == 0, done.stderr
    points = [line.split(" ", 1)[1] for line in trace.read_text().splitlines()]
    return root / "run", points


def draw(points: list[str], phase: str) -> str:
    """``<point>@<n>``: a point of ``phase``, drawn with a fixed seed, and which of its
    passes to kill at."""
    rng = random.Random(f"{SEED}:{phase}")
    at = rng.choice([i for i, p in enumerate(points) if PHASES[phase](p)])
    return f"{points[at]}@{points[:at + 1].count(points[at])}"


def processes_tagged(tag: str) -> list[int]:
    """Live processes whose environment carries ``tag`` (the killed run and its children)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                env = Path(f"/proc/{entry}/environ").read_bytes()
            except OSError:
                continue
            if f"RSDISTILL_TEST_TAG={tag}".encode() in env.split(b"\0"):
                found.append(int(entry))
    return found


def untimed(run: Path) -> dict:
    m = json.loads((run / "metrics.json").read_text())
    m = {k: v for k, v in m.items() if k not in TIMING}
    m["run"] = {k: v for k, v in m["run"].items() if k not in RUN_TIMING}
    with open(run / "epochs.csv", newline="") as fh:
        m["epochs.csv"] = [{k: v for k, v in r.items() if k != "epoch_seconds"}
                           for r in csv.DictReader(fh)]
    return m


def tensors(run: Path) -> dict[str, torch.Tensor]:
    """Every tensor of model.pt and last.pt (weights, optimiser, schedule, RNG states)."""
    out = {}

    def walk(prefix, obj):
        if isinstance(obj, torch.Tensor):
            out[prefix] = obj
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{prefix}/{k}", v)
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(f"{prefix}/{i}", v)

    for name in ("model.pt", "last.pt"):
        walk(name, torch.load(run / name, map_location="cpu", weights_only=True))
    return out


def leftovers(*folders: Path) -> list[str]:
    return [str(p) for folder in folders if folder.is_dir() for p in folder.rglob("*")
            if is_temp_file_name(p.name) or p.name == ".rsdistill.lock"]


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_kill_at_a_random_point_then_resume_gives_the_uninterrupted_result(
        phase, reference, tiny_tree3, tmp_path):
    ref_run, points = reference
    kill_at = draw(points, phase)
    cache, run, tag = tmp_path / "cache", tmp_path / "run", uuid.uuid4().hex
    killed = subprocess.run(command(tiny_tree3, cache, run), capture_output=True, text=True,
                            timeout=300, env=env(RSDISTILL_KILL_AT=kill_at,
                                                 RSDISTILL_TEST_TAG=tag))
    assert killed.returncode == -signal.SIGKILL, f"{kill_at} was not reached: {killed.stderr}"
    # Children die with the run (at once on Linux); give the kernel a moment to reap them.
    deadline = time.monotonic() + 30
    while processes_tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_tagged(tag) == [], f"processes of the run killed at {kill_at} remain"

    resumed = subprocess.run(command(tiny_tree3, cache, run, "--resume"), capture_output=True,
                             text=True, timeout=300, env=env())
    assert resumed.returncode == 0, f"killed at {kill_at}: {resumed.stderr}"
    assert "Traceback" not in resumed.stderr
    a, b = tensors(run), tensors(ref_run)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == [], f"killed at {kill_at}"
    assert untimed(run) == untimed(ref_run), f"killed at {kill_at}"
    assert leftovers(run, cache) == [], f"killed at {kill_at}"
