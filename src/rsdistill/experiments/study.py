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

from rsdistill.config import from_dict, option, read_yaml
from rsdistill.data.module import DataConfig, prepare_data
from rsdistill.data.views import view_key
from rsdistill.errors import ConfigError
from rsdistill.experiments.backends import BackendConfig
from rsdistill.experiments.assistant import AssistantConfig, train_assistant
from rsdistill.experiments.grid import (
    DEFAULT_ALPHAS, GRID_KEYS, SweepConfig, parse_alphas, parse_betas,
)
from rsdistill.experiments.procedures import run_training
from rsdistill.experiments.records import refuse_other_files
from rsdistill.experiments.study_progress import Stage, StudyProgress
from rsdistill.experiments.sweep import run_sweep
from rsdistill.io import atomic_write_text
from rsdistill.losses import MethodConfig
from rsdistill.paths import DATA_ENV, default_cache_dir, default_data_root
from rsdistill.runtime.locks import clear_project_files, run_dir_lock
from rsdistill.runtime.rundir import ASSISTANT_DIR, METRICS_FILE, STUDY_FILE
from rsdistill.training.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class StudySweep:
    alphas: str | list[float] = DEFAULT_ALPHAS
    betas: list[str] = field(default_factory=lambda: ["0", "alpha"])
    seeds: int = option(3, help="seeds 0..N-1 of the sweep")
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
    # The teacher reads teacher_image_size px made from images first reduced to this many
    # px: a teacher fine-tuned on the student's own view (e.g. 32 for 32 px students),
    # whose labels the student can follow; the students' teacher view follows it.
    teacher_source_size: int | None = None

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


_SIZE_KEYS = ("teacher_image_size", "teacher_source_size")


def teacher_data(cfg: StudyConfig) -> DataConfig:
    """The teacher's data section: its own size, and the size its images are reduced to
    first when it is taught on the students' view."""
    size = cfg.teacher_image_size or cfg.data.image_size
    source = cfg.teacher_source_size or cfg.data.source_size
    if source is not None:
        view_key(size, source)  # a source larger than the size is refused here, before training
    return replace(cfg.data, image_size=size, source_size=source)


def _move_teacher_view_keys(raw: dict) -> dict:
    """``teacher: {image_size: 128, source_size: 32}`` is read as ``teacher_image_size``
    and ``teacher_source_size`` (the view belongs to the data, the section to training)."""
    teacher = raw.get("teacher")
    if not isinstance(teacher, dict) or not {"image_size", "source_size"} & set(teacher):
        return raw
    teacher, moved = dict(teacher), {}
    for key in ("image_size", "source_size"):
        if key in teacher:
            if f"teacher_{key}" in raw:
                raise ConfigError(f"the teacher's {key} is given twice (teacher.{key} and "
                                  f"teacher_{key}); keep one")
            moved[f"teacher_{key}"] = teacher.pop(key)
    return {**raw, "teacher": teacher, **moved}


def study_from_dict(raw: dict) -> StudyConfig:
    if not isinstance(raw, dict):
        raise ConfigError("a study config must be a mapping with sections "
                          f"out, {', '.join(SECTIONS)}")
    unknown = sorted(set(raw) - {"out", *_SIZE_KEYS, *SECTIONS})
    if unknown:
        raise ConfigError(f"unknown section(s) in study config: {', '.join(unknown)}; "
                          f"allowed: out, {', '.join(_SIZE_KEYS)}, {', '.join(SECTIONS)}")
    raw = _move_teacher_view_keys(_move_legacy_method_keys(raw))
    cfg = StudyConfig()
    if "out" in raw:
        if not isinstance(raw["out"], str):
            raise ConfigError(f"config key 'out' must be a path string, got {raw['out']!r}")
        cfg.out = raw["out"]
    for key in _SIZE_KEYS:
        size = raw.get(key)
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 8:
                raise ConfigError(f"config key '{key}' must be an integer >= 8, got {size!r}")
            setattr(cfg, key, size)
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
    raw = read_yaml(path)
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


def study_stages(cfg: StudyConfig) -> list[Stage]:
    """The study's stages in order, each with the epochs it trains (the ETA's measure)."""
    assistant = [Stage("assistant", cfg.assistant.epochs or cfg.student.epochs)] \
        if cfg.assistant.enabled else []
    return [Stage("data"), Stage("teacher", cfg.teacher.epochs), *assistant,
            Stage("sweep", cfg.student.epochs * cfg.sweep.seeds), Stage("report")]


def run_study(cfg: StudyConfig, progress: bool = True, overwrite: bool = False,
              backend: BackendConfig | None = None, stages: StudyProgress | None = None) -> Path:
    """Checks the data, trains the teacher and the sweep (its seeds on ``backend``);
    returns the sweep directory (to report on). The data stage (download included) ends
    before anything is written to the study directory or trained. ``stages`` times the
    stages (the report's is the caller's to finish)."""
    stages = stages or StudyProgress(study_stages(cfg))
    cfg = resolve_data_root(cfg)
    sweep = study_sweep(cfg)
    sweep.validate()
    cfg.teacher.validate()
    cfg.student.validate()
    cfg.assistant.validate()
    stages.begin("data", f"data ({cfg.data.dataset}"
                 f"{', downloading what is missing' if cfg.data.download else ''})")
    t_data = teacher_data(cfg)
    # Decoded (and cached) once here, for every size the runs read; the runs then load
    # the cache. Also checks the split, so a data problem stops the study before it starts.
    prepared = prepare_data(cfg.data, extra_views=((t_data.image_size, t_data.source_size),),
                            progress=progress)
    log.info("%s: %d images, %d classes, from %s", cfg.data.dataset, len(prepared.dataset),
             prepared.num_classes, prepared.dataset.source)
    del prepared
    stages.done("data")
    with run_dir_lock(cfg.out) as out:
        if overwrite:
            clear_project_files(out)
        elif not (out / STUDY_FILE).is_file():
            refuse_other_files(out, "study")
        atomic_write_text(out / STUDY_FILE, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        teacher_dir = out / "teacher"
        trained = (teacher_dir / METRICS_FILE).is_file()
        if not trained:
            stages.begin("teacher", f"training the teacher {cfg.teacher.model}")
            run_training(teacher_dir, t_data, cfg.teacher, resume=True, progress=progress)
        stages.done("teacher", measured=not trained)
        if cfg.assistant.enabled:
            trained = (out / ASSISTANT_DIR / METRICS_FILE).is_file()
            stages.begin("assistant", f"the teacher assistant {cfg.assistant.model}")
            sweep = replace(sweep, teacher=train_assistant(out, cfg.assistant, sweep.teacher,
                                                           cfg.data, cfg.student,
                                                           progress=progress))
            stages.done("assistant", measured=not trained)
        stages.begin("sweep", f"α sweep of {cfg.student.model} ({len(sweep.alphas)} α × "
                              f"{len(sweep.betas)} β × {sweep.seeds} seeds)")
        run_sweep(out / "sweep", cfg.data, cfg.student, sweep, resume=True, progress=progress,
                  jobs=cfg.sweep.jobs, backend=backend)
        stages.done("sweep")
    return out / "sweep"
