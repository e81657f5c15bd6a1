"""Distillation methods trained under identical settings and compared in one table.

Every (method, seed) is an ordinary run in ``<out>/<method>/seed<k>/``, made by
:func:`~rsdistill.experiments.procedures.run_training` with the same data, student, schedule,
optimiser and seed, so each can be evaluated or resumed on its own. A ``scratch``
baseline (the student from the labels alone) is always included. Rerunning with
``--resume`` continues: a finished run (its metrics.json exists) is read, not retrained,
and an interrupted one resumes from its checkpoint.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import yaml

from rsdistill.config import read_record
from rsdistill.data.module import DataConfig, prepare_data
from rsdistill.config import option
from rsdistill.errors import ConfigError
from rsdistill.experiments.backends import BackendConfig, Trial, TrialBatch, run_trials
from rsdistill.experiments.procedures import resolve_settings, run_training
from rsdistill.experiments.records import (
    LOCATION_KEYS,
    DistillConfig,
    check_grid_dir,
    config_diffs,
)
from rsdistill.experiments.stats import (
    SCORE_KEYS,
    by_seed,
    flat_paired,
    mean_std,
    paired_difference,
    write_csv,
)
from rsdistill.experiments.teacher import teacher_summary
from rsdistill.io import atomic_write_text, read_json, write_json
from rsdistill.losses import DEFAULT_ALPHA, METHODS
from rsdistill.runtime.locks import run_dir_lock
from rsdistill.runtime.rundir import (
    COMPARE_CSV,
    COMPARE_FILE,
    COMPARE_RESULTS,
    COMPARE_RUNS_CSV,
    METRICS_FILE,
)
from rsdistill.training.config import TrainConfig

log = logging.getLogger(__name__)

SCRATCH = "scratch"
# The reference every other row is measured against, besides scratch.
REFERENCE = "kd"


def default_methods() -> list[str]:
    """Every registered method that distils (the plain cross-entropy one is the scratch
    baseline, always included)."""
    return sorted((name for name in METHODS if name != "none"), key=lambda n: (n != REFERENCE, n))


@dataclass
class CompareConfig:
    teacher: str = ""
    methods: list[str] = field(default_factory=default_methods)
    seeds: int = option(3, help="seeds 0..N-1")
    alpha: float = DEFAULT_ALPHA
    # None = each method's own default temperature (1 for dml, 4 otherwise).
    temperature: float | None = None
    # method -> {option: value}, each checked as that method's --method-option.
    method_options: dict = field(default_factory=dict)

    def entries(self) -> list[str]:
        """The scratch baseline first, then the methods in the order given, each once."""
        return list(dict.fromkeys([SCRATCH, *self.methods]))

    def distill_config(self, method: str) -> DistillConfig | None:
        """The distill section of one method's runs; none for the scratch baseline."""
        if method == SCRATCH:
            return None
        return DistillConfig(teacher=self.teacher, method=method, alpha=self.alpha,
                             temperature=self.temperature,
                             method_options=dict(self.method_options.get(method, {})))

    def validate(self) -> None:
        if self.seeds < 1:
            raise ConfigError(f"--seeds must be >= 1, got {self.seeds}")
        if not self.methods:
            raise ConfigError("--methods names no method; e.g. --methods kd,at,dml")
        stray = sorted(set(self.method_options) - set(self.methods))
        if stray:
            raise ConfigError(f"--method-option names method(s) not in --methods: "
                              f"{', '.join(stray)}")
        # Every method checked as its own distill run would check it, before any training.
        for method in self.entries():
            distill = self.distill_config(method)
            if distill is not None:
                distill.check_teacher(self.teacher, distill.validate())


def run_compare(out: str | Path, data_cfg: DataConfig, train_cfg: TrainConfig,
                cfg: CompareConfig, *, resume: bool = False, progress: bool = True,
                overwrite: bool = False, backend: BackendConfig | None = None) -> dict:
    """Trains every (method, seed) not yet finished and summarizes them; ``out`` holding a
    comparison is continued only with ``resume`` (and the same settings)."""
    cfg.validate()
    data_cfg, teacher = resolve_settings(data_cfg, train_cfg, cfg.teacher)
    cfg = replace(cfg, teacher=teacher)
    record = {"kind": "compare", "data": asdict(data_cfg), "train": asdict(train_cfg),
              "compare": asdict(cfg)}
    with run_dir_lock(out) as out:
        if check_grid_dir(out, COMPARE_FILE, "comparison", resume, overwrite):
            check_same_comparison(out / COMPARE_FILE, record)
        atomic_write_text(out / COMPARE_FILE, yaml.safe_dump(record, sort_keys=False))
        return _train_and_summarize(out, data_cfg, train_cfg, cfg, record, progress, backend)


def _train_entry(run_dir: Path, data_cfg: DataConfig, train_cfg: TrainConfig,
                 distill: DistillConfig | None, *, progress: bool, **_) -> None:
    # A trial: an interrupted run resumes from its last.pt.
    run_training(run_dir, data_cfg, train_cfg, distill, resume=True, progress=progress)


def _train_and_summarize(out: Path, data_cfg: DataConfig, train_cfg: TrainConfig,
                         cfg: CompareConfig, record: dict, progress: bool,
                         backend: BackendConfig | None) -> dict:
    data = prepare_data(data_cfg, progress=progress)
    entries = [(method, seed) for method in cfg.entries() for seed in range(cfg.seeds)]
    trials = [Trial(f"{method} seed {seed}", out / method / f"seed{seed}",
                    (out / method / f"seed{seed}" / METRICS_FILE,),
                    functools.partial(_train_entry, out / method / f"seed{seed}", data_cfg,
                                      replace(train_cfg, seed=seed),
                                      cfg.distill_config(method)))
              for method, seed in entries]
    # Locally one run at a time, in this process, as every run uses the cores it is given.
    run_trials(TrialBatch(trials, out, 1, train_cfg.precision, train_cfg.device, progress),
               backend)
    rows, student = [], None
    for method, seed in entries:
        metrics = read_json(out / method / f"seed{seed}" / METRICS_FILE)
        rows.append(run_row(method, seed, f"{method}/seed{seed}", metrics))
        student = student or {"model": metrics["run"]["model"],
                              "params": metrics["params"], "flops": metrics["flops"]}
    summary = {"config": record, "data": data.describe(), "student": student,
               "teacher": teacher_summary(cfg.teacher) if cfg.teacher else None,
               "rows": rows, "methods": summarize(rows, cfg.entries())}
    write_json(out / COMPARE_RESULTS, summary)
    write_csv(out / COMPARE_CSV, summary["methods"])
    write_csv(out / COMPARE_RUNS_CSV, rows)
    return summary


def check_same_comparison(path: Path, record: dict) -> None:
    """Reusing finished runs is right only if they were trained with the same settings.

    Adding methods or seeds to a comparison is fine (only the new runs train); any other
    change would put runs of two settings in one table, so it is refused.
    """
    if not path.is_file():
        return
    old = read_record(path, "a comparison", "restore it, or choose another --out")
    # --seed is not used (seeds are 0..N-1); methods and seeds may grow; each method's
    # options are compared for the methods both comparisons hold.
    diffs = config_diffs(old, record, {"data": DataConfig, "train": TrainConfig,
                                       "compare": CompareConfig},
                         ignore=LOCATION_KEYS | {"seed", "methods", "seeds", "method_options"})
    a_opts = (old.get("compare") or {}).get("method_options") or {}
    b_opts = record["compare"]["method_options"]
    shared = set((old.get("compare") or {}).get("methods") or []) & set(record["compare"]["methods"])
    diffs += [f"method options of {m}: {a_opts.get(m, {})!r} -> {b_opts.get(m, {})!r}"
              for m in sorted(shared) if a_opts.get(m, {}) != b_opts.get(m, {})]
    if diffs:
        raise ConfigError(f"{path.parent} holds a comparison with other settings: "
                          + "; ".join(diffs[:5]) + "; use another --out")


def run_row(method: str, seed: int, run: str, m: dict) -> dict:
    return {"method": method, "seed": seed, **{k: m[k] for k in SCORE_KEYS},
            "seconds_per_epoch": m["run"]["seconds_per_epoch"],
            "train_seconds": m["run"]["train_seconds"],
            # A run written before the key existed trained the student alone.
            "extra_trainable_params": m["run"].get("extra_trainable_params", 0),
            "params": m["params"], "run": run}


def summarize(rows: list[dict], order: list[str]) -> list[dict]:
    """One row per method: mean ± std over seeds and the differences to kd and scratch."""
    by_method: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_method[r["method"]].append(r)
    table = []
    for method in order:
        rs = by_method[method]
        row: dict = {"method": method, "seeds": len(rs)}
        for key in ("accuracy", "f1_macro"):
            row[f"{key}_mean"], row[f"{key}_std"] = mean_std([r[key] for r in rs])
        row["seconds_per_epoch_mean"] = mean_std([r["seconds_per_epoch"] for r in rs])[0]
        row["train_seconds_mean"] = mean_std([r["train_seconds"] for r in rs])[0]
        row["extra_trainable_params"] = max(r["extra_trainable_params"] for r in rs)
        table.append(row)
    refs = {r["method"]: r for r in table}
    for row in table:
        for ref in (REFERENCE, SCRATCH):
            base = refs.get(ref)
            row[f"delta_accuracy_vs_{ref}"] = (row["accuracy_mean"] - base["accuracy_mean"]
                                               if base is not None and base is not row else None)
        for ref in (REFERENCE, SCRATCH):
            row.update(paired_columns(by_method[row["method"]], by_method.get(ref), ref))
    return table


def paired_columns(runs: list[dict], ref_runs: list[dict] | None, ref: str) -> dict:
    """The method's accuracy minus method ``ref``'s of the same seed
    (``stats.paired_difference``: its mean, std, 95 % interval and whether that excludes
    0), flat for the CSV as ``paired_vs_<ref>_<key>``; all None for ``ref`` itself or
    without a ``ref`` row."""
    p = paired_difference(by_seed(runs), by_seed(ref_runs)) \
        if ref_runs and runs[0]["method"] != ref else {}
    return flat_paired(p, f"paired_vs_{ref}_") | {f"paired_vs_{ref}_seeds": p.get("seeds", 0)}
