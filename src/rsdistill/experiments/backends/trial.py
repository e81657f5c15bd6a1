"""One trial: the unit a backend runs (a sweep's seed, a Pareto cell's seed, a compare entry).

A trial is idempotent by construction: it trains into its own run directory, resumes from
the ``last.pt`` there (the commit point written after every epoch), writes its results
atomically, and counts as done once every results file exists. So any backend may run it
again after a crash, on any node that sees the same storage, and get the same numbers.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

from rsdistill.errors import ConfigError
from rsdistill.io import read_json
from rsdistill.runtime.rundir import CLUSTER_TOKEN_FILE, STATE_FILE


@dataclass(frozen=True)
class Schedule:
    """Where a trial stands among its batch's trials still to run, for an ETA. The backend
    starts them in this order, ``slots`` at a time: the concurrency it runs them with."""
    what: str    # the batch, in the ETA's words: "sweep", "Pareto grid"
    place: int   # 0-based
    count: int
    slots: int

    def waves_after(self) -> int:
        """Waves of ``slots`` trials that start after this trial's own."""
        return -(-self.count // self.slots) - 1 - self.place // self.slots


@dataclass(frozen=True)
class Trial:
    label: str                      # what it is, e.g. "resnet8@32 seed 1"
    run_dir: Path                   # holds its last.pt: where a retry resumes
    results: tuple[Path, ...]       # its metrics.json files; all present = done
    # fn(progress=, thread_budget=, announce=, schedule=): trains (resuming); picklable.
    fn: Callable[..., Any]
    # Set by the backend that runs it (``scheduled``); None outside a backend.
    schedule: Schedule | None = None

    def done(self) -> bool:
        return all(p.is_file() for p in self.results)


def scheduled(trials: list[Trial], what: str, slots: int) -> list[Trial]:
    """``trials`` with their places in a run of ``slots`` at a time (at most all of them):
    a backend calls it with the concurrency it runs them with, the one number an ETA needs."""
    slots = max(1, min(slots, len(trials)))
    return [replace(t, schedule=Schedule(what, i, len(trials), slots))
            for i, t in enumerate(trials)]


@dataclass(frozen=True)
class TrialResult:
    label: str
    node: str
    pid: int
    seconds: float
    resumed: bool   # it found a last.pt of an earlier, interrupted attempt


@dataclass(frozen=True)
class StorageToken:
    """A file the driver wrote into the grid's directory and its content."""
    path: str
    value: str


def new_token(out: Path) -> StorageToken:
    return StorageToken(str(Path(out).absolute() / CLUSTER_TOKEN_FILE), os.urandom(8).hex())


def not_shared_error(out: Path | str, node: str, detail: str) -> ConfigError:
    return ConfigError(f"--out {out} is not shared between the cluster's nodes ({detail} on "
                       f"{node}): put it on storage every node mounts at the same path (NFS or "
                       "another shared file system), see docs/cluster.md")


def check_token(token: StorageToken) -> None:
    """In a trial's process: refuse to train unless this node sees the driver's --out."""
    try:
        seen = Path(token.path).read_text().strip()
    except OSError:
        seen = None
    if seen != token.value:
        what = "the driver's token file is missing" if seen is None else \
            "another driver's token file is there"
        raise not_shared_error(Path(token.path).parent, socket.gethostname(), what)


def enter_worker(trial: Trial, threads: int, log_level: int) -> None:
    """First thing in a worker process (local pool or Ray): log lines prefixed with the
    trial's label, and its intra-op threads set before anything runs (a fresh process
    starts with one thread per core)."""
    logging.basicConfig(level=log_level, format=f"rsdistill: {trial.label}: %(message)s",
                        stream=sys.stderr, force=True)
    torch.set_num_threads(threads)


def execute_trial(trial: Trial, *, progress: bool = False,
                  thread_budget: Callable[[], int] | None = None, announce: bool = False,
                  token: StorageToken | None = None) -> TrialResult:
    """Runs one trial in this process (the driver's or a worker's)."""
    if token is not None:
        check_token(token)
    resumed = (Path(trial.run_dir) / STATE_FILE).is_file()
    start = time.perf_counter()
    trial.fn(progress=progress, thread_budget=thread_budget, announce=announce,
             schedule=trial.schedule)
    return TrialResult(trial.label, socket.gethostname(), os.getpid(),
                       time.perf_counter() - start, resumed)


def describe_finished(trial: Trial, result: TrialResult) -> str:
    """One line: what finished, its test accuracy (each member's), time, node and where."""
    accs = []
    for path in trial.results:
        try:
            acc = read_json(path).get("accuracy")
        except Exception:  # a line of progress is no reason to fail the grid
            acc = None
        name = path.parent.name if len(trial.results) > 1 else ""
        accs.append(f"{name} {acc:.4f}".strip() if isinstance(acc, float) else f"{name} ?")
    again = ", resumed from its last.pt" if result.resumed else ""
    return (f"{trial.label}: accuracy {', '.join(accs)} in {result.seconds:.1f} s on "
            f"{result.node} (pid {result.pid}{again}) -> {trial.run_dir}")
