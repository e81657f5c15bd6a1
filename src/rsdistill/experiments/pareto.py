"""Students of several sizes and input resolutions, from scratch and distilled, for an
accuracy–latency Pareto front: the deployer's "most accurate student under my budget".

Each (student, input size) is one fused sweep with α ∈ {0, α}: the α = 0 member is the
student trained from scratch and the α member the distilled one, on the same batches,
epochs and seeds, so the two differ by the teacher alone. Every cell lives in
``<out>/<student>_<size>/`` laid out like any sweep (resumable, reportable).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import yaml

from rsdistill.data.module import DataConfig
from rsdistill.errors import ConfigError
from rsdistill.experiments.grid import SweepConfig
from rsdistill.experiments.records import check_resume
from rsdistill.experiments.stats import SCORE_KEYS, mean_std
from rsdistill.experiments.sweep import run_sweep
from rsdistill.io import atomic_write_text, read_json
from rsdistill.losses import MethodConfig, check_alpha
from rsdistill.models import check_model_name
from rsdistill.runtime.rundir import PARETO_FILE, SWEEP_RESULTS
from rsdistill.training.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class ParetoConfig:
    teacher: str = ""
    students: list[str] = field(default_factory=lambda: ["resnet8", "resnet14", "resnet20",
                                                        "wrn_16_2", "mobilenetv2_x0_5"])
    sizes: list[int] = field(default_factory=lambda: [32, 64])
    seeds: int = 3
    # The distilled students' method; α is the distilled member's weight (scratch is α 0).
    method: MethodConfig = field(default_factory=MethodConfig)

    def validate(self) -> None:
        if not self.students or not self.sizes:
            raise ConfigError("a Pareto study needs at least one student and one input size")
        for name in self.students:  # all of them before the first cell trains
            check_model_name(name, "--students")
        if self.seeds < 1:
            raise ConfigError(f"--seeds must be >= 1, got {self.seeds}")
        if any(s < 8 for s in self.sizes):
            raise ConfigError(f"--sizes must all be >= 8, got {self.sizes}")
        if check_alpha(self.method.alpha) == 0:
            raise ConfigError("--alpha must be > 0: α = 0 is the scratch student every cell "
                              "trains anyway")
        self.cell_sweep("").validate()

    def cell_sweep(self, teacher: str) -> SweepConfig:
        return SweepConfig(teacher=teacher, alphas=[0.0, self.method.alpha], betas=["0"],
                           seeds=self.seeds, method=self.method)

    def cells(self) -> list[tuple[str, int]]:
        return [(m, s) for m in self.students for s in self.sizes]


def cell_dir(out: Path, model: str, size: int) -> Path:
    return Path(out) / f"{model.replace(':', '_')}_{size}"


def run_pareto(out: str | Path, data_cfg: DataConfig, train_cfg: TrainConfig, cfg: ParetoConfig,
               *, progress: bool = True, jobs: int = 0) -> list[dict]:
    """Trains every cell (finished ones are read, interrupted ones resumed); returns one row
    per (student, size, kind) with accuracy mean ± std over seeds."""
    out = Path(out)
    cfg.validate()
    record = {"kind": "pareto", "data": asdict(data_cfg), "train": asdict(train_cfg),
              "pareto": {k: v for k, v in asdict(cfg).items() if k != "method"},
              "method": asdict(cfg.method)}
    if (out / PARETO_FILE).is_file():
        old = yaml.safe_load((out / PARETO_FILE).read_text()) or {}
        check_resume(out / PARETO_FILE, old, record,
                     {"data": DataConfig, "train": TrainConfig, "method": MethodConfig},
                     ignore={"model", "image_size"}, hint="; use another --out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / PARETO_FILE, yaml.safe_dump(record, sort_keys=False))
    rows = []
    for model, size in cfg.cells():
        where = cell_dir(out, model, size)
        log.info("Pareto cell %s at %d px: scratch and α = %g, %d seed(s)", model, size,
                 cfg.method.alpha, cfg.seeds)
        summary = run_sweep(where, replace(data_cfg, image_size=size),
                            replace(train_cfg, model=model), cfg.cell_sweep(cfg.teacher),
                            resume=True, progress=progress, jobs=jobs)
        rows += cell_rows(where, model, size, summary, cfg)
    return rows


def cell_rows(where: Path, model: str, size: int, summary: dict, cfg: ParetoConfig) -> list[dict]:
    rows = []
    for kind, alpha in (("scratch", 0.0), ("distilled", cfg.method.alpha)):
        runs = [r for r in summary["rows"] if r["alpha"] == alpha]
        row = {"model": model, "image_size": size, "kind": kind, "alpha": alpha,
               "seeds": len(runs), "params": summary["student"]["params"],
               "flops": summary["student"]["flops"],
               # Any seed's weights time alike; the first is the file the timing loads.
               "run": str(where / runs[0]["run"])}
        for key in SCORE_KEYS:
            row[f"{key}_mean"], row[f"{key}_std"] = mean_std([r[key] for r in runs])
        rows.append(row)
    return rows


def read_rows(out: Path, cfg: ParetoConfig) -> list[dict]:
    """The rows of a finished Pareto study, from its cells' results."""
    rows = []
    for model, size in cfg.cells():
        where = cell_dir(out, model, size)
        if not (where / SWEEP_RESULTS).is_file():
            raise ConfigError(f"{where} has no {SWEEP_RESULTS}; run 'rsdistill pareto' first")
        rows += cell_rows(where, model, size, read_json(where / SWEEP_RESULTS), cfg)
    return rows

