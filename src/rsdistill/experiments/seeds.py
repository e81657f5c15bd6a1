"""Seeds of a sweep trained side by side, one process each, within the core budget.

A small student uses a CPU core poorly from several threads (a resnet8 step at batch
32 runs about as fast on one thread as on two), so separate processes, one thread
each, are what fills the cores. Processes × intra-op threads never exceed the budget:
oversubscribed cores slow a CPU run 10-60x.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable

import torch

from rsdistill.runtime import distributed
from rsdistill.runtime.precision import resolve_device, resolve_precision
from rsdistill.runtime.processes import die_with_parent

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


# In a seed worker process: how many seeds are training right now, across all workers.
_ACTIVE_SEEDS = None


def _init_seed_worker(active, parent_pid: int | None = None) -> None:
    global _ACTIVE_SEEDS
    # Killed with the sweep: an orphan would go on writing its seed's runs beside the
    # resumed sweep (and hold their locks).
    if parent_pid is not None:
        die_with_parent(parent_pid)
    _ACTIVE_SEEDS = active


def _seed_worker(fit: Callable[..., None], seed: int, cores: int, jobs: int,
                 log_level: int) -> int:
    # A fresh (spawned) process with a log prefix naming the seed. Its thread budget is
    # its share of the cores, read again every epoch: a seed left to train alone (the
    # third of three on two cores) takes over the cores the others gave back.
    logging.basicConfig(level=log_level, format=f"rsdistill: seed {seed}: %(message)s",
                        stream=sys.stderr, force=True)
    # Before anything runs: a spawned process starts with one thread per core.
    torch.set_num_threads(max(1, cores // jobs))
    active = _ACTIVE_SEEDS
    with active.get_lock():
        active.value += 1
    try:
        fit(seed, thread_budget=lambda: max(1, cores // max(1, active.value)), announce=False)
    finally:
        with active.get_lock():
            active.value -= 1
    return seed


def fit_seeds_in_parallel(fit: Callable[..., None], seeds: list[int], jobs: int,
                          precision: str, device: str) -> None:
    """``fit(seed, thread_budget=..., announce=...)`` for every seed, ``jobs`` at a time,
    each in a spawned process (``fit`` must be picklable, e.g. a ``functools.partial``)."""
    cores = core_budget()
    log.info("%d seeds, %d at a time: one process each with %d intra-op thread%s (a budget of "
             "%d thread%s; a seed left alone takes the freed threads)", len(seeds), jobs,
             max(1, cores // jobs), "" if cores // jobs == 1 else "s", cores,
             "" if cores == 1 else "s")
    note = jobs_note(jobs, cores, usable_cores())
    if note:
        log.log(*note)
    log.info("training in %s", resolve_precision(precision, device).summary())
    level = logging.getLogger("rsdistill").getEffectiveLevel()
    ctx = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
    active = ctx.Value("i", 0)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_seed_worker,
                             initargs=(active, os.getpid())) as pool:
        futures = [pool.submit(_seed_worker, fit, seed, cores, jobs, level) for seed in seeds]
        try:
            for future in as_completed(futures):
                log.info("seed %d finished", future.result())
        except BaseException:
            for f in futures:
                f.cancel()
            raise
