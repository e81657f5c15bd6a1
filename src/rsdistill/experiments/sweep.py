"""α (and β) sweeps trained as one fused run per seed, with per-run and aggregated results.

Every student of a seed trains in the same pass over the data (one augmentation
and one teacher forward per batch). Each keeps its own run directory laid out
exactly like a single ``distill`` run, so ``rsdistill evaluate`` works on it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import yaml

from rsdistill.config import read_record
from rsdistill.data.module import DataConfig
from rsdistill.errors import ConfigError
from rsdistill.experiments.grid import SweepConfig, beta_label, member_name, upgrade_sweep_record
from rsdistill.experiments.procedures import prepared_once, resolve_settings
from rsdistill.experiments.records import check_grid_dir, check_resume, run_record
from rsdistill.experiments.backends import BackendConfig, Trial, TrialBatch, run_trials
from rsdistill.experiments.backends.trial import Schedule
from rsdistill.experiments.stats import SCORE_KEYS, mean_std, write_csv
from rsdistill.experiments.study_progress import eta_text
from rsdistill.experiments.teacher import teacher_summary
from rsdistill.io import atomic_write_text, read_json, write_json
from rsdistill.losses import MethodConfig
from rsdistill.runtime import distributed
from rsdistill.runtime.locks import run_dir_lock
from rsdistill.runtime.checkpoint import resolve_model_path
from rsdistill.runtime.rundir import (
    ASSISTANT_DIR,
    METRICS_FILE,
    SWEEP_AGGREGATE_CSV,
    SWEEP_FILE,
    SWEEP_RESULTS,
    SWEEP_ROWS_CSV,
    seed_dir,
)
from rsdistill.training.config import TrainConfig
from rsdistill.training.members import MemberSpec, build_members
from rsdistill.training.trainer import Trainer

log = logging.getLogger(__name__)

SWEEP_SECTIONS = {"data": DataConfig, "train": TrainConfig, "sweep": SweepConfig,
                  "method": MethodConfig}


@dataclass
class SweepPlan:
    """A sweep set up in its (locked) directory: its seeds as trials, and what writes the
    results once they are done."""
    out: Path
    trials: list[Trial]
    summarize: Callable[[], dict]


def run_sweep(out: str | Path, data_cfg: DataConfig, train_cfg: TrainConfig, sweep: SweepConfig,
              *, resume: bool = False, progress: bool = True, jobs: int = 0,
              overwrite: bool = False, backend: BackendConfig | None = None) -> dict:
    """Train every seed's fused pass (``jobs`` seeds at a time, 0 = one per core, on the
    local backend) and summarize."""
    with sweep_plan(out, data_cfg, train_cfg, sweep, resume=resume, progress=progress,
                    jobs=jobs, overwrite=overwrite) as plan:
        run_trials(TrialBatch(plan.trials, plan.out, jobs, train_cfg.precision,
                              train_cfg.device, progress, "sweep"), backend)
        return plan.summarize()


@contextlib.contextmanager
def sweep_plan(out: str | Path, data_cfg: DataConfig, train_cfg: TrainConfig,
               sweep: SweepConfig, *, resume: bool = False, progress: bool = True,
               jobs: int = 0, overwrite: bool = False, label: str = ""
               ) -> Iterator[SweepPlan]:
    """Checks and locks ``out``, writes sweep.yaml and prepares the teacher and data (so
    caches exist before any trial starts); yields one trial per seed. A trial run in this
    process reuses what was prepared (``prepared_once``)."""
    sweep.validate()
    if jobs < 0:
        raise ConfigError(f"--jobs must be >= 0 (0 = one per core on a CPU), got {jobs}")
    data_cfg, teacher = resolve_settings(data_cfg, train_cfg, sweep.teacher)
    sweep = replace(sweep, teacher=teacher)
    record = {"kind": "sweep", "data": asdict(data_cfg), "train": asdict(train_cfg),
              **sweep.record()}
    with run_dir_lock(out) as out:
        check_sweep_dir(out, record, resume, overwrite)
        distributed.barrier()  # every rank has checked before rank 0 writes
        if distributed.is_main():
            atomic_write_text(out / SWEEP_FILE, yaml.safe_dump(record, sort_keys=False))

        cell = f"{out} {uuid.uuid4().hex}"
        described = prepared_once(cell, data_cfg, sweep.teacher, progress)[2].describe()
        members, owner = sweep.members()
        names = [member_name(a, b) for a, b in members]
        # resume=True: the directory was checked above, so a seed's last.pt is this
        # sweep's, and a retried trial continues it.
        trials = [Trial(f"{label + ' ' if label else ''}seed {seed}", seed_dir(out, seed),
                        tuple(seed_dir(out, seed) / n / METRICS_FILE for n in names),
                        functools.partial(fit_seed, out, data_cfg, train_cfg, sweep, seed, cell=cell,
                                          resume=True))
                  for seed in range(sweep.seeds)]
        yield SweepPlan(out, trials, functools.partial(summarize, out, sweep, owner, train_cfg,
                                                       record, described))


def check_sweep_dir(out: Path, record: dict, resume: bool, overwrite: bool) -> None:
    """A sweep continues only its own sweep.yaml's settings, and writes into nothing else
    than an empty directory unless ``--overwrite`` (which clears what rsdistill wrote)."""
    # `sweep --assistant` distils the assistant into OUT/assistant before the sweep starts.
    if not check_grid_dir(out, SWEEP_FILE, "sweep", resume, overwrite,
                          frozenset({ASSISTANT_DIR})):
        return
    old = upgrade_sweep_record(read_record(out / SWEEP_FILE, "a sweep",
                                           "restore it, or choose another --out"))
    check_resume(out / SWEEP_FILE, old, record, SWEEP_SECTIONS, ignore={"seeds"},
                 hint="; use another --out for a new sweep")


def fit_seed(out: Path, data_cfg: DataConfig, train_cfg: TrainConfig, sweep: SweepConfig,
             seed: int, *, cell: str, resume: bool, progress: bool, thread_budget=None,
             announce: bool = True, schedule: Schedule | None = None) -> None:
    """One seed's students in one fused pass into ``out/seed<k>/<member>/``.

    ``thread_budget``: called before every epoch for the intra-op threads to use.
    ``schedule``: the seed's place in the batch its backend runs, for the ETA.
    ``cell``: the sweep's name for ``prepared_once`` (its seeds share the teacher and data).
    """
    teacher, view, data = prepared_once(cell, data_cfg, sweep.teacher, False)
    cfg = replace(train_cfg, seed=seed)
    specs = []
    for alpha, beta in sweep.members()[0]:
        name, distill = member_name(alpha, beta), sweep.member_config(alpha, beta)
        specs.append(MemberSpec(name, seed_dir(out, seed) / name, distill,
                                run_record(data_cfg, cfg, distill)))
    # The seed's directory (its last.pt) and every member's, so that no other rsdistill
    # process (a seed worker of another sweep, a distill into a member) writes there.
    with contextlib.ExitStack() as locks:
        for path in (seed_dir(out, seed), *(spec.run_dir for spec in specs)):
            locks.enter_context(run_dir_lock(path))
        members = build_members(specs, cfg, data, teacher, view)
        # A seed worker's log lines already start with "seed N:" (experiments/seeds.py).
        log.info("%s%d students in one fused pass", f"seed {seed}: " if announce else "",
                 len(members))
        trainer = Trainer(seed_dir(out, seed), data, members, cfg, progress=progress,
                          announce=announce, teacher_file=resolve_model_path(sweep.teacher))
        trainer.thread_budget = thread_budget
        if schedule is not None:
            trainer.eta = batch_eta(schedule, cfg.epochs)
        trainer.fit(resume=resume)


def batch_eta(schedule: Schedule, epochs: int):
    """The ETA of the batch (a sweep's seeds, a Pareto grid's cells' seeds) as seen by one
    seed's pass: its epochs left, then the waves of trials that start after its own, each
    as long as its ``epochs`` at its pace."""
    waves_after = schedule.waves_after()

    def eta(epochs_left: int, epoch_seconds: float) -> str:
        return eta_text((epochs_left + waves_after * epochs) * epoch_seconds, schedule.what)
    return eta


def summarize(out: Path, sweep: SweepConfig, owner: dict[str, str], train_cfg: TrainConfig,
              record: dict, data: dict) -> dict:
    """results.json / .csv: one row per (α, β, seed) and the mean ± std per (α, β)."""
    rows, metrics = [], []
    for seed in range(sweep.seeds):
        for beta in sweep.betas:
            for alpha in sweep.alphas:
                run = f"seed{seed}/{owner[member_name(alpha, beta)]}"
                metrics.append(read_json(out / run / METRICS_FILE))
                rows.append(result_row(alpha, beta, seed, run, metrics[-1]))
    first = metrics[0]
    summary = {"config": record, "data": data, "rows": rows, "aggregate": aggregate(rows),
               "teacher": teacher_summary(sweep.teacher),
               "student": {"model": train_cfg.model, "params": first["params"],
                           "flops": first["flops"]}}
    if distributed.is_main():
        write_json(out / SWEEP_RESULTS, summary)
        write_csv(out / SWEEP_ROWS_CSV, rows)
        write_csv(out / SWEEP_AGGREGATE_CSV, summary["aggregate"])
    return summary


def result_row(alpha: float, beta: str, seed: int, run: str, m: dict) -> dict:
    return {
        "alpha": alpha, "beta": beta_label(beta), "seed": seed,
        **{k: m[k] for k in SCORE_KEYS},
        "latency_ms_p50": m["inference"]["latency_ms_p50"],
        "test_seconds": m["inference"]["test_seconds"],
        "effective_rank": m["first_layer"]["effective_rank"],
        "nuclear_norm": m["first_layer"]["nuclear_norm"],
        "best_epoch": m["run"]["best_epoch"],
        "seconds_per_epoch": m["run"]["seconds_per_epoch"],
        "run": run,
    }


def aggregate(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["beta"], r["alpha"]), []).append(r)
    out = []
    for (beta, alpha), rs in groups.items():
        row = {"alpha": alpha, "beta": beta, "seeds": len(rs)}
        for key in (*SCORE_KEYS, "latency_ms_p50", "test_seconds", "effective_rank"):
            mean, std = mean_std([float(r[key]) for r in rs])
            row[f"{key}_mean"], row[f"{key}_std"] = mean, std
        out.append(row)
    return out
