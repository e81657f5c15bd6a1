"""The ``local`` backend: trials on this machine, side by side in spawned processes
within the core budget, or one after the other in this process.

A small student uses a CPU core poorly from several threads (a resnet8 step at batch
32 runs about as fast on one thread as on two), so separate processes, one thread
each, are what fills the cores. Processes × intra-op threads never exceed the budget:
oversubscribed cores slow a CPU run 10-60x.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from typing import Iterator

import torch

from rsdistill.experiments.backends.base import BACKENDS, BackendConfig, TrialBatch
from rsdistill.experiments.backends.trial import (
    Trial, TrialResult, enter_worker, execute_trial, scheduled,
)
from rsdistill.experiments.seeds import core_budget, default_jobs, jobs_note, usable_cores
from rsdistill.runtime.precision import resolve_precision
from rsdistill.runtime.processes import die_with_parent

log = logging.getLogger(__name__)

# In a worker process: how many trials are training right now, across all workers.
_ACTIVE = None


def _init_worker(active, parent_pid: int | None = None) -> None:
    global _ACTIVE
    # Killed with the grid: an orphan would go on writing its trial's runs beside the
    # resumed grid (and hold their locks).
    if parent_pid is not None:
        die_with_parent(parent_pid)
    _ACTIVE = active


def _worker(trial: Trial, cores: int, jobs: int, log_level: int,
            fixed: int | None = None) -> TrialResult:
    # A fresh (spawned) process with a log prefix naming the trial. Its thread budget is
    # its share of the cores (or --cpus-per-trial), read again every epoch: a trial left
    # to train alone (the third of three on two cores) takes over the cores the others
    # gave back.
    enter_worker(trial, fixed or max(1, cores // jobs), log_level)
    active = _ACTIVE
    with active.get_lock():
        active.value += 1
    try:
        budget = (lambda: fixed) if fixed else \
            (lambda: max(1, cores // max(1, active.value)))
        return execute_trial(trial, thread_budget=budget)
    finally:
        with active.get_lock():
            active.value -= 1


def _local_jobs(batch: TrialBatch, cfg: BackendConfig) -> int:
    if batch.jobs:
        jobs = batch.jobs
    elif cfg.cpus_per_trial:
        jobs = max(1, core_budget() // cfg.cpus_per_trial)
    else:
        jobs = default_jobs(len(batch.trials), batch.device)
    return max(1, min(jobs, len(batch.trials)))


@BACKENDS.register("local")
def run_local(batch: TrialBatch, cfg: BackendConfig) -> Iterator[tuple[Trial, TrialResult]]:
    jobs = _local_jobs(batch, cfg)
    batch = replace(batch, trials=scheduled(batch.trials, batch.what, jobs))
    if jobs == 1:
        if cfg.cpus_per_trial:
            torch.set_num_threads(cfg.cpus_per_trial)
        for trial in batch.trials:
            yield trial, execute_trial(trial, progress=batch.progress, announce=True)
        return
    yield from _in_processes(batch, jobs, cfg.cpus_per_trial)


def _in_processes(batch: TrialBatch, jobs: int, fixed: int | None
                  ) -> Iterator[tuple[Trial, TrialResult]]:
    cores = core_budget()
    threads = fixed or max(1, cores // jobs)
    log.info("%d trials, %d at a time: one process each with %d intra-op thread%s (a budget "
             "of %d thread%s%s)", len(batch.trials), jobs, threads, "" if threads == 1 else "s",
             cores, "" if cores == 1 else "s",
             "" if fixed else "; a trial left alone takes the freed threads")
    note = jobs_note(jobs, cores, usable_cores())
    if note:
        log.log(*note)
    log.info("training in %s", resolve_precision(batch.precision, batch.device).summary())
    level = logging.getLogger("rsdistill").getEffectiveLevel()
    ctx = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
    active = ctx.Value("i", 0)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                             initargs=(active, os.getpid())) as pool:
        futures = {pool.submit(_worker, t, cores, jobs, level, fixed): t
                   for t in batch.trials}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise
