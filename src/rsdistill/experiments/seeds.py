"""How many seeds (trials) train side by side on this machine, within the core budget.

The process pool that runs them is the ``local`` backend (``backends/local.py``).
"""

from __future__ import annotations

import logging
import os

import torch

from rsdistill.runtime import distributed
from rsdistill.runtime.precision import resolve_device

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. under taskset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def core_budget() -> int:
    """Threads the whole sweep may keep busy: torch's intra-op setting (OMP_NUM_THREADS
    when set), never more than the cores this process may run on."""
    return max(1, min(torch.get_num_threads(), usable_cores()))


def default_jobs(seeds: int, device: str) -> int:
    """Seeds trained side by side: one per core on a CPU, one at a time on a GPU."""
    if distributed.launched_world_size() > 1 or resolve_device(device).type != "cpu":
        return 1
    return max(1, min(seeds, core_budget()))


def jobs_note(jobs: int, budget: int, machine: int) -> tuple[int, str] | None:
    """(log level, message) when ``jobs`` seed processes exceed the thread budget or the
    machine's cores; None when they fit."""
    if jobs > machine:
        return logging.WARNING, (f"--jobs {jobs} exceeds the {machine} core"
                                 f"{'' if machine == 1 else 's'}: the seed processes will "
                                 "compete for them and each runs much slower")
    if jobs > budget:
        # OMP_NUM_THREADS (or torch's setting) below the cores is the user's budget, not the
        # machine's: processes that do not compete for cores are no reason for a warning.
        return logging.INFO, (f"--jobs {jobs} is above the thread budget of {budget} "
                              f"(OMP_NUM_THREADS or torch's setting) but within the {machine} "
                              f"cores: {jobs} single-thread processes")
    return None
