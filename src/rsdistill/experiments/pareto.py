"""Students of several sizes and input resolutions, from scratch and distilled, for an
accuracy–latency Pareto front: the deployer's "most accurate student under my budget".

Each (student, input size) is one fused sweep with α ∈ {0, α}: the α = 0 member is the
student trained from scratch and the α member the distilled one, on the same batches,
epochs and seeds, so the two differ by the teacher alone. Every cell lives in
``<out>/<student>_<size>/`` laid out like any sweep (resumable, reportable).

``student_pretrained: imagenet`` starts every ``timm:`` student from its ImageNet weights
(fed their own normalisation, trained with the fine-tuning recipe for the options the
command line left out): its scratch member is then the pretrained student fine-tuned
without a teacher, its distilled member the same plus the teacher. ``size_teachers``
gives the cells of one input size their own teacher, e.g. one fine-tuned on that size's
view (``train --source-size``), which the student can follow better than a teacher that
reads the scene at its own resolution (docs/pareto_students.md).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import yaml

from rsdistill.config import read_record
from rsdistill.data.module import DataConfig
from rsdistill.config import option
from rsdistill.errors import ConfigError
from rsdistill.experiments.backends import BackendConfig, TrialBatch, run_trials
from rsdistill.experiments.grid import SweepConfig
from rsdistill.experiments.records import check_grid_dir, check_resume
from rsdistill.experiments.stats import (
    SCORE_KEYS,
    by_seed,
    flat_paired,
    mean_std,
    paired_difference,
)
from rsdistill.experiments.sweep import sweep_plan
from rsdistill.io import atomic_write_text, read_json
from rsdistill.losses import MethodConfig
from rsdistill.models.common import TIMM_PREFIX
from rsdistill.models.imagenet import IMAGENET
from rsdistill.models import check_model_name
from rsdistill.runtime.locks import run_dir_lock
from rsdistill.runtime.rundir import PARETO_FILE, SWEEP_RESULTS
from rsdistill.training.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class ParetoConfig:
    teacher: str = ""
    students: list[str] = field(default_factory=lambda: ["resnet8", "resnet14", "resnet20",
                                                        "wrn_16_2", "mobilenetv2_x0_5"])
    sizes: list[int] = field(default_factory=lambda: [32, 64])
    seeds: int = option(3, help="seeds 0..N-1")
    # The distilled students' method; α is the distilled member's weight (scratch is α 0).
    method: MethodConfig = field(default_factory=MethodConfig)
    # "imagenet": timm students start from their ImageNet weights; None: every student
    # starts from random weights.
    student_pretrained: str | None = None
    # The training options a pretrained cell takes from the fine-tuning recipe (those the
    # command line left out); the other cells keep the run's.
    fine_tune: dict = field(default_factory=dict)
    # input size -> the teacher of that size's cells (default: teacher).
    size_teachers: dict[int, str] = field(default_factory=dict)

    def pretrained_for(self, model: str) -> str | None:
        """The start of ``model``'s cells: ImageNet weights for a timm student when asked."""
        return self.student_pretrained if model.startswith(TIMM_PREFIX) else None

    def cell_train(self, train_cfg: TrainConfig, model: str) -> TrainConfig:
        pretrained = self.pretrained_for(model)
        extra = self.fine_tune if pretrained else {}
        return replace(train_cfg, model=model, pretrained=pretrained, **extra)

    def cell_teacher(self, size: int) -> str:
        return self.size_teachers.get(size, self.teacher)

    def validate(self) -> None:
        if not self.students or not self.sizes:
            raise ConfigError("a Pareto study needs at least one student and one input size")
        for name in self.students:  # all of them before the first cell trains
            check_model_name(name, "--students")
        if self.seeds < 1:
            raise ConfigError(f"--seeds must be >= 1, got {self.seeds}")
        if any(s < 8 for s in self.sizes):
            raise ConfigError(f"--sizes must all be >= 8, got {self.sizes}")
        if self.method.alpha == 0:  # a number in [0, 1]: MethodConfig checked it
            raise ConfigError("--alpha must be > 0: α = 0 is the scratch student every cell "
                              "trains anyway")
        if self.student_pretrained not in (None, IMAGENET):
            raise ConfigError(f"--student-pretrained takes {IMAGENET} (timm students start "
                              f"from their ImageNet weights), got {self.student_pretrained!r}")
        if self.student_pretrained and not any(m.startswith(TIMM_PREFIX) for m in self.students):
            raise ConfigError("--student-pretrained imagenet applies to timm: students and "
                              "--students names none; add e.g. timm:tf_efficientnet_lite0")
        stray = sorted(set(self.size_teachers) - set(self.sizes))
        if stray:
            raise ConfigError(f"--teacher-at names size(s) {', '.join(map(str, stray))} that "
                              f"are not in --sizes {','.join(map(str, self.sizes))}")
        self.cell_sweep("").validate()

    def cell_sweep(self, teacher: str) -> SweepConfig:
        return SweepConfig(teacher=teacher, alphas=[0.0, self.method.alpha], betas=["0"],
                           seeds=self.seeds, method=self.method)

    def cells(self) -> list[tuple[str, int]]:
        return [(m, s) for m in self.students for s in self.sizes]


def cell_dir(out: Path, model: str, size: int) -> Path:
    return Path(out) / f"{model.replace(':', '_')}_{size}"


def run_pareto(out: str | Path, data_cfg: DataConfig, train_cfg: TrainConfig, cfg: ParetoConfig,
               *, resume: bool = False, overwrite: bool = False, progress: bool = True,
               jobs: int = 0, backend: BackendConfig | None = None) -> list[dict]:
    """Trains every cell (finished ones are read, interrupted ones resumed: ``out`` holding
    a Pareto grid is continued only with ``resume``, and the same settings); returns one row
    per (student, size, kind) with accuracy mean ± std over seeds. Every cell's seeds are
    trials of one batch, so a backend runs seeds of several cells side by side."""
    cfg.validate()
    record = {"kind": "pareto", "data": asdict(data_cfg), "train": asdict(train_cfg),
              "pareto": {k: v for k, v in asdict(cfg).items() if k != "method"},
              "method": asdict(cfg.method)}
    with run_dir_lock(out) as out, contextlib.ExitStack() as cells:
        if check_grid_dir(out, PARETO_FILE, "Pareto grid", resume, overwrite):
            old = read_record(out / PARETO_FILE, "a Pareto grid",
                              "restore it, or choose another --out")
            check_resume(out / PARETO_FILE, old, record,
                         {"data": DataConfig, "train": TrainConfig, "method": MethodConfig},
                         ignore={"model", "image_size"}, hint="; use another --out")
        atomic_write_text(out / PARETO_FILE, yaml.safe_dump(record, sort_keys=False))
        plans = []
        for model, size in cfg.cells():
            log.info("Pareto cell %s at %d px%s: scratch and α = %g, %d seed(s)", model, size,
                     " from ImageNet weights" if cfg.pretrained_for(model) else "",
                     cfg.method.alpha, cfg.seeds)
            # A cell folder is not one --overwrite knows at the top: each clears its own.
            plans.append((model, size, cells.enter_context(sweep_plan(
                cell_dir(out, model, size), replace(data_cfg, image_size=size),
                cfg.cell_train(train_cfg, model), cfg.cell_sweep(cfg.cell_teacher(size)),
                resume=not overwrite, overwrite=overwrite, progress=progress, jobs=jobs,
                label=f"{model}@{size}"))))
        run_trials(TrialBatch([t for *_, plan in plans for t in plan.trials], out, jobs,
                              train_cfg.precision, train_cfg.device, progress, "Pareto grid"),
                   backend)
        rows = []
        for model, size, plan in plans:
            rows += cell_rows(cell_dir(out, model, size), model, size, plan.summarize(), cfg)
    return rows


def cell_rows(where: Path, model: str, size: int, summary: dict, cfg: ParetoConfig) -> list[dict]:
    """The cell's scratch and distilled rows; the distilled one with its accuracy minus
    the scratch student's of the same seed (``paired_*``, None on the scratch row)."""
    rows = []
    scratch = [r for r in summary["rows"] if r["alpha"] == 0.0]
    train = summary["config"]["train"]
    for kind, alpha in (("scratch", 0.0), ("distilled", cfg.method.alpha)):
        runs = [r for r in summary["rows"] if r["alpha"] == alpha]
        row = {"model": model, "image_size": size, "kind": kind, "alpha": alpha,
               "pretrained": train.get("pretrained"), "epochs": train["epochs"],
               "teacher": summary["config"]["sweep"]["teacher"],
               "seeds": len(runs), "params": summary["student"]["params"],
               "flops": summary["student"]["flops"],
               # Any seed's weights time alike; the first is the file the timing loads.
               "run": str(where / runs[0]["run"]),
               "runs": ";".join(str(where / r["run"]) for r in runs)}
        for key in SCORE_KEYS:
            row[f"{key}_mean"], row[f"{key}_std"] = mean_std([r[key] for r in runs])
        p = paired_difference(by_seed(runs), by_seed(scratch)) if kind == "distilled" else {}
        row.update(flat_paired(p, "paired_"))
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

