"""The whole study in one call: data → teacher → α sweeps without/with the nuclear norm.
Every stage resumes or is skipped when already complete, so rerunning the same command
after an interruption continues where it stopped. (``rsdistill run`` then writes the
report, a layer above.)"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import yaml

from rsdistill.config import from_dict
from rsdistill.data.module import DataConfig, prepare_data
from rsdistill.errors import ConfigError
from rsdistill.experiments.assistant import AssistantConfig, train_assistant
from rsdistill.experiments.grid import (
    DEFAULT_ALPHAS, GRID_KEYS, SweepConfig, parse_alphas, parse_betas,
)
from rsdistill.experiments.procedures import run_training
from rsdistill.experiments.records import refuse_other_files
from rsdistill.experiments.sweep import run_sweep
from rsdistill.io import atomic_write_text
from rsdistill.losses import MethodConfig
from rsdistill.paths import DATA_ENV, default_cache_dir, default_data_root
from rsdistill.runtime.locks import clear_project_files, run_dir_lock
from rsdistill.runtime.rundir import METRICS_FILE, STUDY_FILE
from rsdistill.training.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class StudySweep:
    alphas: str | list[float] = DEFAULT_ALPHAS
    betas: list[str] = field(default_factory=lambda: ["0", "alpha"])
    seeds: int = 3
    # Seeds trained side by side (0 = one per core on a CPU, 1 on a GPU); how the
    # study runs, not what it computes.
    jobs: int = 0


@dataclass
class StudyMethod(MethodConfig):
    """The students' method; α and β are the sweep's grid, so they are not set here."""

    def __post_init__(self) -> None:
        super().__post_init__()
        # Checked here because from_dict cannot tell a default from a value given.
        if (self.alpha, self.nuclear_beta) != (MethodConfig.alpha, MethodConfig.nuclear_beta):
            raise ConfigError("the study's method section takes no alpha or nuclear_beta; "
                              "set sweep.alphas and sweep.betas instead")


# Keys of the sweep section that belong to the method (how configs were written before
# the method had a section of its own); still read, and moved there.
_LEGACY_METHOD_KEYS = ("method", "temperature", "method_options", "student_layers",
                       "teacher_layers")


@dataclass
class StudyConfig:
    out: str = "runs/study"
    data: DataConfig = field(default_factory=DataConfig)
    # The UC Merced defaults of configs/ucmerced.yaml, sized for ~15 min on a 2-core CPU.
    teacher: TrainConfig = field(default_factory=lambda: TrainConfig(model="resnet8x4", epochs=40))
    student: TrainConfig = field(default_factory=lambda: TrainConfig(model="resnet8", epochs=25))
    sweep: StudySweep = field(default_factory=StudySweep)
    method: StudyMethod = field(default_factory=StudyMethod)
    # A teacher assistant between teacher and students (model "" = none).
    assistant: AssistantConfig = field(default_factory=AssistantConfig)
    # The teacher's input size when it differs from the students' (data.image_size):
    # a high-resolution teacher for low-resolution students, each fed its own view.
    teacher_image_size: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


SECTIONS = {"data": DataConfig, "teacher": TrainConfig, "student": TrainConfig,
            "sweep": StudySweep, "method": StudyMethod, "assistant": AssistantConfig}


def _move_legacy_method_keys(raw: dict) -> dict:
    sweep = raw.get("sweep")
    if not isinstance(sweep, dict) or not set(sweep) & set(_LEGACY_METHOD_KEYS):
        return raw
    method = dict(raw.get("method") or {})
    sweep = dict(sweep)
    for key in _LEGACY_METHOD_KEYS:
        if key in sweep:
            method.setdefault(key, sweep.pop(key))
    return {**raw, "sweep": sweep, "method": method}


def study_from_dict(raw: dict) -> StudyConfig:
    if not isinstance(raw, dict):
        raise ConfigError("a study config must be a mapping with sections "
                          f"out, {', '.join(SECTIONS)}")
    unknown = sorted(set(raw) - {"out", "teacher_image_size", *SECTIONS})
    if unknown:
        raise ConfigError(f"unknown section(s) in study config: {', '.join(unknown)}; "
                          f"allowed: out, teacher_image_size, {', '.join(SECTIONS)}")
    raw = _move_legacy_method_keys(raw)
    cfg = StudyConfig()
    if "out" in raw:
        if not isinstance(raw["out"], str):
            raise ConfigError(f"config key 'out' must be a path string, got {raw['out']!r}")
        cfg.out = raw["out"]
    size = raw.get("teacher_image_size")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 8:
            raise ConfigError(f"config key 'teacher_image_size' must be an integer >= 8, got {size!r}")
        cfg.teacher_image_size = size
    for name, cls in SECTIONS.items():
        if name in raw:
            # The study's own defaults (e.g. a resnet8x4 teacher) under what is given; the
            # method's defaults come from the method named (T = 1 for dml, else 4).
            defaults = {} if cls is StudyMethod else asdict(getattr(cfg, name))
            merged = {**defaults, **(raw[name] or {})} if isinstance(raw[name], (dict, type(None))) \
                else raw[name]
            setattr(cfg, name, from_dict(cls, merged, name))
    return cfg


def load_study_config(path: str | Path) -> StudyConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if raw is None or raw == {}:
        # Not the full default study: an empty file is far more likely a mistake.
        raise ConfigError(f"config file {path} is empty; copy one of the configs in configs/ "
                          "(e.g. configs/ucmerced.yaml) and edit it, or run "
                          "'rsdistill run --dataset NAME' for the default study")
    return study_from_dict(raw)


def study_sweep(cfg: StudyConfig) -> SweepConfig:
    alphas = cfg.sweep.alphas if isinstance(cfg.sweep.alphas, str) else \
        ",".join(str(a) for a in cfg.sweep.alphas)
    method = {k: v for k, v in asdict(cfg.method).items() if k not in GRID_KEYS}
    return SweepConfig(teacher=str(Path(cfg.out) / "teacher"), alphas=parse_alphas(alphas),
                       betas=parse_betas(",".join(cfg.sweep.betas)), seeds=cfg.sweep.seeds,
                       method=MethodConfig(**method))


def resolve_data_root(cfg: StudyConfig) -> StudyConfig:
    """The config with the data root the environment decides (``$RSDISTILL_DATA``, else
    ~/.cache/rsdistill/data) filled in, so study.yaml names the folder used, as every
    run's config.yaml does."""
    if cfg.data.data_root:
        return cfg
    return replace(cfg, data=replace(cfg.data, data_root=str(default_data_root())))


def describe_locations(cfg: StudyConfig) -> str:
    """One line: where the study looks for its data and where it writes."""
    root = Path(cfg.data.data_root or default_data_root()).expanduser()
    if cfg.data.data_root:
        chosen = "--data-root or the config"
    elif os.environ.get(DATA_ENV):
        chosen = f"${DATA_ENV}"
    else:
        chosen = f"the default; --data-root DIR or ${DATA_ENV} to change"
    fetch = "fetched there if missing" if cfg.data.download else \
        "--download fetches it if missing"
    cache = Path(cfg.data.cache_dir or default_cache_dir()).expanduser()
    return (f"{cfg.data.dataset} study: looking for the data in {root.absolute()} ({chosen}; "
            f"{fetch}); writing results to {Path(cfg.out).absolute()} and decoded images to "
            f"{cache.absolute()}")


def run_study(cfg: StudyConfig, progress: bool = True, overwrite: bool = False) -> Path:
    """Checks the data, trains the teacher and the sweep; returns the sweep directory
    (to report on). The data stage (download included) ends before anything is written
    to the study directory or trained."""
    cfg = resolve_data_root(cfg)
    sweep = study_sweep(cfg)
    sweep.validate()
    cfg.teacher.validate()
    cfg.student.validate()
    cfg.assistant.validate()
    log.info("stage 1/4: data (%s%s)", cfg.data.dataset,
             ", downloading what is missing" if cfg.data.download else "")
    teacher_size = cfg.teacher_image_size or cfg.data.image_size
    # Decoded (and cached) once here, for every size the runs read; the runs then load
    # the cache. Also checks the split, so a data problem stops the study before it starts.
    prepared = prepare_data(cfg.data, extra_views=((teacher_size, cfg.data.source_size),),
                            progress=progress)
    log.info("%s: %d images, %d classes, from %s", cfg.data.dataset, len(prepared.dataset),
             prepared.num_classes, prepared.dataset.source)
    del prepared
    with run_dir_lock(cfg.out) as out:
        if overwrite:
            clear_project_files(out)
        elif not (out / STUDY_FILE).is_file():
            refuse_other_files(out, "study")
        atomic_write_text(out / STUDY_FILE, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        teacher_dir = out / "teacher"
        if not (teacher_dir / METRICS_FILE).is_file():
            log.info("stage 2/4: training the teacher %s", cfg.teacher.model)
            teacher_data = cfg.data if cfg.teacher_image_size is None else \
                replace(cfg.data, image_size=cfg.teacher_image_size)
            run_training(teacher_dir, teacher_data, cfg.teacher, resume=True, progress=progress)
        if cfg.assistant.enabled:
            sweep = replace(sweep, teacher=train_assistant(out, cfg.assistant, sweep.teacher,
                                                           cfg.data, cfg.student,
                                                           progress=progress))
        log.info("stage 3/4: α sweep of %s (%d α × %d β × %d seeds)", cfg.student.model,
                 len(sweep.alphas), len(sweep.betas), sweep.seeds)
        run_sweep(out / "sweep", cfg.data, cfg.student, sweep, resume=True, progress=progress,
                  jobs=cfg.sweep.jobs)
    return out / "sweep"
