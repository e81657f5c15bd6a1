"""α (and β) sweeps trained as one fused run per seed, with per-run and aggregated results.

Every student of a seed trains in the same pass over the data (one augmentation
and one teacher forward per batch). Each keeps its own run directory laid out
exactly like a single ``distill`` run, so ``rsdistill evaluate`` works on it.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import multiprocessing
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import yaml

from rsdistill.data.dataset import default_data_root
from rsdistill.data.module import DataConfig, prepare_data
from rsdistill.engine import distributed
from rsdistill.engine.distiller import Distiller, TeacherView, example_input
from rsdistill.engine.environment import seed_everything
from rsdistill.engine.precision import resolve_device
from rsdistill.engine.runs import (DistillConfig, check_teacher_data, config_diffs, load_teacher,
                                  model_input_data, model_meta, teacher_data_config)
from rsdistill.engine.trainer import METRICS_FILE, Member, RunDirectory, TrainConfig, Trainer
from rsdistill.errors import ConfigError
from rsdistill.io import atomic_write_text, read_json, write_json
from rsdistill.losses import build_method_loss, check_alpha, check_temperature, resolve_beta
from rsdistill.models import build_model

log = logging.getLogger(__name__)

RESULT_KEYS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


def parse_alphas(text: str) -> list[float]:
    """``0,0.1,0.3`` or ``start:stop:step`` with an inclusive stop."""
    text = str(text).strip()
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0:
                raise ValueError
            n = int(math.floor((stop - start) / step + 1e-9)) + 1
            values = [round(start + i * step, 10) for i in range(max(n, 0))]
        else:
            values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--alphas must be a list like 0,0.1,0.3 or a range start:stop:step "
                          f"with step > 0, got {text!r}") from None
    if not values:
        raise ConfigError(f"--alphas {text!r} gives no values")
    for a in values:
        check_alpha(a)
    return list(dict.fromkeys(values))


def parse_betas(text: str) -> list[str]:
    """Comma-separated β settings, each a number or ``alpha``; kept as given for labels."""
    items = [x.strip() for x in str(text).split(",") if x.strip()]
    if not items:
        raise ConfigError("--nuclear-beta gives no values")
    for item in items:
        resolve_beta(item, 0.5)
    return list(dict.fromkeys(items))


def beta_label(spec: str) -> str:
    return "alpha" if spec.lower() == "alpha" else f"{float(spec):g}"


@dataclass
class SweepConfig:
    teacher: str = ""
    alphas: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    betas: list[str] = field(default_factory=lambda: ["0"])
    seeds: int = 1
    temperature: float = 4.0
    method: str = "kd"
    # As in DistillConfig: every member uses the same method, options and layers.
    method_options: dict = field(default_factory=dict)
    student_layers: list[str] | None = None
    teacher_layers: list[str] | None = None

    def validate(self) -> None:
        if self.seeds < 1:
            raise ConfigError(f"--seeds must be >= 1, got {self.seeds}")
        check_temperature(self.temperature)
        for a in self.alphas:
            check_alpha(a)
        for b in self.betas:
            resolve_beta(b, 0.5)
        # Each member's settings checked as its own distill run would check them.
        for a in self.alphas:
            self.member_config(a, "0").validate()
        # A fused pass steps one student per member; a method that trains several models
        # per run (dml's peers, born-again's generations) cannot be one of them.
        procedure = build_method_loss(self.method, alpha=self.alphas[0],
                                      temperature=self.temperature,
                                      options=self.method_options).procedure
        if procedure != "single":
            raise ConfigError(f"method {self.method!r} trains several models per run "
                              f"({procedure}), which a fused sweep cannot; run it with "
                              "'rsdistill distill' or 'rsdistill compare'")

    def member_config(self, alpha: float, beta: str) -> DistillConfig:
        """The ``distill`` section of one member's run, as a single run would record it."""
        return DistillConfig(teacher=self.teacher, method=self.method, alpha=alpha,
                             temperature=self.temperature, nuclear_beta=beta,
                             method_options=dict(self.method_options),
                             student_layers=self.student_layers,
                             teacher_layers=self.teacher_layers)


def member_name(alpha: float, beta: str) -> str:
    return f"alpha{alpha:.2f}_beta{beta_label(beta)}"


def sweep_members(sweep: SweepConfig) -> tuple[list[tuple[float, str]], dict[str, str]]:
    """The (α, β) members to train, and for every grid cell the member that trains it.

    Cells that resolve to the same settings (``β = alpha`` at ``α = 0`` is ``β = 0``)
    train once and are reported under both labels.
    """
    unique: dict[tuple[float, float], tuple[float, str]] = {}
    owner: dict[str, str] = {}
    for beta in sweep.betas:
        for alpha in sweep.alphas:
            key = (alpha, resolve_beta(beta, alpha))
            unique.setdefault(key, (alpha, beta))
            owner[member_name(alpha, beta)] = member_name(*unique[key])
    return list(unique.values()), owner


def default_jobs(seeds: int, device: str) -> int:
    """Seeds trained side by side: one per core on a CPU, one at a time on a GPU.

    Small students use a CPU core poorly from several threads (a resnet8 step at batch
    32 runs about as fast on one thread as on two), so separate processes, one thread
    each, are what fills the cores.
    """
    if distributed.launched_world_size() > 1 or resolve_device(device).type != "cpu":
        return 1
    return max(1, min(seeds, os.cpu_count() or 1))


def run_sweep(out: str | Path, data_cfg: DataConfig, train_cfg: TrainConfig, sweep: SweepConfig,
              *, resume: bool = False, progress: bool = True, jobs: int = 0) -> dict:
    """Train every seed's fused pass (``jobs`` seeds at a time, 0 = :func:`default_jobs`)."""
    out = Path(out)
    sweep.validate()
    train_cfg.validate()
    if jobs < 0:
        raise ConfigError(f"--jobs must be >= 0 (0 = one per core on a CPU), got {jobs}")
    distributed.setup(train_cfg.device)
    if data_cfg.data_root is None:
        data_cfg = replace(data_cfg, data_root=str(default_data_root()))
    data_cfg = model_input_data(data_cfg, train_cfg)
    sweep = replace(sweep, teacher=str(Path(sweep.teacher).expanduser().resolve()))
    sweep_record = {"kind": "sweep", "data": asdict(data_cfg), "train": asdict(train_cfg),
                    "sweep": asdict(sweep)}
    state = RunDirectory(out)
    if state.file("sweep.yaml").is_file():
        if not resume:
            raise ConfigError(f"{out} already holds a sweep; pass --resume to continue it or "
                              "choose another --out")
        _check_same_sweep(state.file("sweep.yaml"), sweep_record)
    distributed.barrier()  # every rank has checked before rank 0 writes
    if distributed.is_main():
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "sweep.yaml", yaml.safe_dump(sweep_record, sort_keys=False))

    teacher, view, data = _teacher_and_data(sweep, data_cfg, progress and distributed.is_main())
    members, owner = sweep_members(sweep)
    names = [member_name(a, b) for a, b in members]
    todo = [seed for seed in range(sweep.seeds)
            if not all((out / f"seed{seed}" / n / METRICS_FILE).is_file() for n in names)]
    jobs = min(jobs or default_jobs(sweep.seeds, train_cfg.device), max(1, len(todo)))
    if jobs > 1:
        _fit_seeds_in_parallel(out, data_cfg, train_cfg, sweep, todo, jobs, resume)
    else:
        for seed in todo:
            fit_seed(out, data_cfg, train_cfg, sweep, seed, resume=resume, progress=progress,
                     prepared=(teacher, view, data))

    rows, metrics = [], []
    for seed in range(sweep.seeds):
        for beta in sweep.betas:
            for alpha in sweep.alphas:
                run = f"seed{seed}/{owner[member_name(alpha, beta)]}"
                metrics.append(read_json(out / run / METRICS_FILE))
                rows.append(result_row(alpha, beta, seed, run, metrics[-1]))
    first = metrics[0]
    summary = {"config": sweep_record, "data": data.describe(), "rows": rows,
               "aggregate": aggregate(rows), "teacher": teacher_summary(sweep.teacher),
               "student": {"model": train_cfg.model, "params": first["params"],
                           "flops": first["flops"]}}
    if distributed.is_main():
        write_json(out / "results.json", summary)
        write_csv(out / "results.csv", rows)
        write_csv(out / "results_aggregate.csv", summary["aggregate"])
    return summary


def _teacher_and_data(sweep: SweepConfig, data_cfg: DataConfig, progress: bool):
    """The teacher, the view it reads (``None`` = the student's) and the prepared data."""
    teacher, meta = load_teacher(sweep.teacher)
    view = TeacherView.for_teacher(meta, data_cfg.image_size)
    with distributed.main_first():
        data = prepare_data(data_cfg, (view.image_size,) if view else (), progress=progress)
    check_teacher_data(sweep.teacher, meta, data)
    return teacher, view, data


def fit_seed(out: Path, data_cfg: DataConfig, train_cfg: TrainConfig, sweep: SweepConfig, seed: int,
             *, resume: bool, progress: bool, prepared=None, thread_budget=None) -> None:
    """One seed's students in one fused pass into ``out/seed<k>/<member>/``.

    ``thread_budget``: called before every epoch for the intra-op threads to use.
    """
    teacher, view, data = prepared or _teacher_and_data(sweep, data_cfg, False)
    seed_dir = out / f"seed{seed}"
    cfg = replace(train_cfg, seed=seed)
    members = []
    for alpha, beta in sweep_members(sweep)[0]:
        name = member_name(alpha, beta)
        seed_everything(seed)  # every student starts as a single run with this seed would
        student = build_model(cfg.model, data.num_classes, data_cfg.image_size,
                              pretrained=cfg.pretrained)
        distill = sweep.member_config(alpha, beta)
        loss = build_method_loss(sweep.method, alpha=alpha, temperature=sweep.temperature,
                                 label_smoothing=cfg.label_smoothing,
                                 options=distill.method_options)
        beta_value = resolve_beta(beta, alpha)
        record = {"kind": "distill", "data": asdict(data_cfg), "train": asdict(cfg),
                  "distill": {**asdict(distill), "nuclear_beta_resolved": beta_value}}
        # Built right after its student, under the same seed: a FitNet regressor
        # is then initialised exactly as in the single run.
        distiller = Distiller(student, loss, teacher, beta_value,
                              student_layers=sweep.student_layers,
                              teacher_layers=sweep.teacher_layers,
                              example_input=example_input(data_cfg.image_size),
                              teacher_view=view)
        members.append(Member(name, distiller, RunDirectory(seed_dir / name), record,
                              model_meta(cfg.model, data)))
    log.info("seed %d: %d students in one fused pass", seed, len(members))
    trainer = Trainer.fused(seed_dir, data, members, cfg, progress=progress)
    trainer.thread_budget = thread_budget
    trainer.fit(resume=resume)


# In a seed worker process: how many seeds are training right now, across all workers.
_ACTIVE_SEEDS = None


def _init_seed_worker(active) -> None:
    global _ACTIVE_SEEDS
    _ACTIVE_SEEDS = active


def _seed_worker(out: Path, data_cfg: DataConfig, train_cfg: TrainConfig, sweep: SweepConfig,
                 seed: int, resume: bool, cores: int, log_level: int) -> int:
    # A fresh (spawned) process with a log prefix naming the seed. Its thread budget is
    # its share of the cores, read again every epoch: a seed left to train alone (the
    # third of three on two cores) takes over the cores the others gave back.
    logging.basicConfig(level=log_level, format=f"rsdistill: seed {seed}: %(message)s",
                        stream=sys.stderr, force=True)
    active = _ACTIVE_SEEDS
    with active.get_lock():
        active.value += 1
    try:
        fit_seed(out, data_cfg, train_cfg, sweep, seed, resume=resume, progress=False,
                 thread_budget=lambda: max(1, cores // max(1, active.value)))
    finally:
        with active.get_lock():
            active.value -= 1
    return seed


def _fit_seeds_in_parallel(out: Path, data_cfg: DataConfig, train_cfg: TrainConfig,
                           sweep: SweepConfig, seeds: list[int], jobs: int, resume: bool) -> None:
    cores = torch.get_num_threads()
    log.info("%d seeds, %d at a time (one process each, sharing %d thread%s)", len(seeds), jobs,
             cores, "" if cores == 1 else "s")
    level = logging.getLogger("rsdistill").getEffectiveLevel()
    ctx = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
    active = ctx.Value("i", 0)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_seed_worker,
                             initargs=(active,)) as pool:
        futures = [pool.submit(_seed_worker, out, data_cfg, train_cfg, sweep, seed, resume,
                               cores, level) for seed in seeds]
        try:
            for future in as_completed(futures):
                log.info("seed %d finished", future.result())
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _check_same_sweep(path: Path, record: dict) -> None:
    """Resuming with other settings would silently mix two studies: refuse it."""
    diffs = config_diffs(yaml.safe_load(path.read_text()) or {}, record,
                         {"data": DataConfig, "train": TrainConfig, "sweep": SweepConfig},
                         ignore={"data_root", "cache_dir", "workers", "download", "seeds"})
    if diffs:
        raise ConfigError(f"--resume with different settings than {path}: " + "; ".join(diffs[:5])
                          + "; use another --out for a new sweep")


def result_row(alpha: float, beta: str, seed: int, run: str, m: dict) -> dict:
    return {
        "alpha": alpha, "beta": beta_label(beta), "seed": seed,
        **{k: m[k] for k in RESULT_KEYS},
        "latency_ms_p50": m["inference"]["latency_ms_p50"],
        "test_seconds": m["inference"]["test_seconds"],
        "effective_rank": m["first_layer"]["effective_rank"],
        "nuclear_norm": m["first_layer"]["nuclear_norm"],
        "best_epoch": m["run"]["best_epoch"],
        "seconds_per_epoch": m["run"]["seconds_per_epoch"],
        "run": run,
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["beta"], r["alpha"]), []).append(r)
    out = []
    for (beta, alpha), rs in groups.items():
        row = {"alpha": alpha, "beta": beta, "seeds": len(rs)}
        for key in (*RESULT_KEYS, "latency_ms_p50", "test_seconds", "effective_rank"):
            mean, std = mean_std([float(r[key]) for r in rs])
            row[f"{key}_mean"], row[f"{key}_std"] = mean, std
        out.append(row)
    return out


def teacher_summary(teacher: str) -> dict | None:
    from rsdistill.engine.checkpoint import resolve_model_path

    metrics_file = resolve_model_path(teacher).parent / METRICS_FILE
    if not metrics_file.is_file():
        return None
    m = read_json(metrics_file)
    size = (teacher_data_config(teacher) or {}).get("image_size")
    return {"model": m["run"]["model"], "image_size": size, "params": m["params"], "flops": m["flops"],
            **{k: m[k] for k in RESULT_KEYS}, "latency_ms_p50": m["inference"]["latency_ms_p50"],
            "test_seconds": m["inference"]["test_seconds"]}


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
