"""Build and run a training or distillation job from its config sections.

The resolved config is what lands in ``config.yaml``; ``evaluate`` and ``--resume``
rebuild everything from it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from rsdistill.config import from_dict
from rsdistill.data.dataset import default_data_root
from rsdistill.data.module import DataConfig, PreparedData, prepare_data, with_input_stats
from rsdistill.engine import distributed
from rsdistill.engine.checkpoint import load_model, resolve_model_path
from rsdistill.engine.distiller import Distiller, TeacherView, example_input
from rsdistill.engine.environment import seed_everything
from rsdistill.engine.trainer import RunDirectory, TrainConfig, Trainer
from rsdistill.errors import CheckpointError, ConfigError
from rsdistill.losses import (
    DISTILL_LOSSES,
    DistillationLoss,
    build_distill_loss,
    build_method_loss,
    check_alpha,
    check_temperature,
    default_temperature,
    resolve_beta,
)
from rsdistill.models import build_model
from rsdistill.models.imagenet import pretrained_input_stats
from rsdistill.registry import Registry

log = logging.getLogger(__name__)


def check_layers(flag: str, layers: list[str] | None) -> None:
    """``None`` (the model's default stages) or a non-empty list of non-empty names."""
    if layers is None:
        return
    if not layers or not all(isinstance(n, str) and n.strip() for n in layers):
        raise ConfigError(f"{flag} must name one or more layers, e.g. layer2 or "
                          f"layer1,layer2,layer3; got {layers!r}")


@dataclass
class DistillConfig:
    teacher: str = ""
    method: str = "kd"
    alpha: float = 0.5
    # None = the method's own default (1 for dml, 4 otherwise), filled in at construction
    # so config.yaml always records the number a run used.
    temperature: float | None = None
    nuclear_beta: float | str = 0.0
    # The method's own options (--method-option KEY=VALUE), checked against its constructor.
    method_options: dict = field(default_factory=dict)
    # Tapped layers of a feature-based method; None = the method's pick among the
    # model's declared stages. Methods on logits ignore them.
    student_layers: list[str] | None = None
    teacher_layers: list[str] | None = None

    def __post_init__(self) -> None:
        # An unknown method keeps None here; validate() then names the valid ones.
        if self.temperature is None and self.method in DISTILL_LOSSES:
            self.temperature = default_temperature(self.method)

    def validate(self) -> float:
        """Checks the options; returns the resolved β."""
        check_alpha(self.alpha)
        DISTILL_LOSSES.get(self.method)
        check_temperature(self.temperature)
        check_layers("--student-layers", self.student_layers)
        check_layers("--teacher-layers", self.teacher_layers)
        # Built once and thrown away: an unknown method, option or value fails here,
        # before any data is decoded (the real loss is built with the run's label smoothing).
        build_method_loss(self.method, alpha=self.alpha, temperature=self.temperature,
                          options=self.method_options)
        return resolve_beta(self.nuclear_beta, self.alpha)

    def check_teacher(self) -> None:
        """A method whose loss reads a teacher (``needs_teacher``: kd, dkd, fitnet and at
        with ``alpha > 0``) is refused without one, before any data is decoded."""
        loss = build_method_loss(self.method, alpha=self.alpha, temperature=self.temperature,
                                 options=self.method_options)
        if loss.needs_teacher and not self.teacher:
            raise ConfigError(f"method {self.method!r} distils from a teacher; pass --teacher "
                              "(a run directory or model.pt)")


def model_meta(model_name: str, data: PreparedData) -> dict:
    return {
        "model": model_name,
        "num_classes": data.num_classes,
        "classes": list(data.classes),
        "image_size": data.dataset.image_size,
        "dataset": data.dataset.name,
        "data_fingerprint": data.dataset.fingerprint,
        "normalization": data.normalizer.to_dict(),
    }


def check_run_dir(out: Path, resume: bool) -> None:
    run = RunDirectory(out)
    if run.has_state() and not resume:
        raise ConfigError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out"
        )


def check_resume_config(out: Path, record: dict, resume: bool, *,
                        has_state: bool | None = None) -> None:
    """With ``--resume``, refuse settings that differ from the run's config.yaml.

    ``has_state`` says whether ``out`` holds a run to continue (default: its last.pt); a
    run made of sub-runs (born-again generations) has no last.pt of its own.
    """
    run = RunDirectory(out)
    started = run.has_state() if has_state is None else has_state
    if not (resume and started and run.file("config.yaml").is_file()):
        return
    diffs = config_diffs(run.read_config(), record,
                         {"data": DataConfig, "train": TrainConfig, "distill": DistillConfig},
                         ignore={"data_root", "cache_dir", "workers", "download"})
    if diffs:
        raise ConfigError(f"--resume with different settings than {out}/config.yaml: "
                          + "; ".join(diffs[:5]))


# Keys added to a config section after runs were already written; an old config.yaml
# lacking them is read with their defaults, so --resume of an old run still matches.
_ADDED_KEYS = ("method_options", "student_layers", "teacher_layers", "mix", "mix_alpha",
               "teacher_augment", "input_mean", "input_std", "backbone_lr_scale")


def config_diffs(old: dict, record: dict, sections: dict[str, type],
                 ignore: set[str]) -> list[str]:
    """``section.key: old -> new`` for every setting of ``sections`` (name -> its config
    class) that differs between two run records, ``ignore``d keys aside. A key the class
    gained after ``old`` was written counts as its default (that is what the old run used).
    """
    diffs = []
    for section, cls in sections.items():
        defaults = added_defaults(cls)
        a = {**defaults, **(old.get(section) or {})}
        b = {**defaults, **(record.get(section) or {})}
        for key in sorted(set(a) | set(b)):
            if key not in ignore and a.get(key) != b.get(key):
                diffs.append(f"{section}.{key}: {a.get(key)!r} -> {b.get(key)!r}")
    return diffs


def added_defaults(cls: type) -> dict:
    defaults = asdict(cls())
    return {k: defaults[k] for k in _ADDED_KEYS if k in defaults}


def model_input_data(data_cfg: DataConfig, train_cfg: TrainConfig) -> DataConfig:
    """The data section with the input statistics the model's pretrained weights expect
    (``--pretrained imagenet``); unchanged otherwise."""
    stats = pretrained_input_stats(train_cfg.model, train_cfg.pretrained)
    return data_cfg if stats is None else with_input_stats(data_cfg, *stats)


def load_teacher(path: str, data: PreparedData | None = None) -> tuple[torch.nn.Module, dict]:
    """The frozen teacher and its meta; checked against ``data`` when given."""
    if not path:
        raise ConfigError("distillation needs --teacher (a run directory or model.pt)")
    teacher, meta = load_model(path)
    if data is not None:
        check_teacher_data(path, meta, data)
    return teacher, meta


def check_teacher_data(path: str, meta: dict, data: PreparedData) -> None:
    if meta["dataset"] != data.dataset.name or list(meta["classes"]) != list(data.classes):
        raise CheckpointError(
            f"teacher {resolve_model_path(path)} was trained on {meta['dataset']} with "
            f"{meta['num_classes']} classes, but this run uses {data.dataset.name} with "
            f"{data.num_classes}; train a teacher on the same dataset and classes"
        )


def teacher_data_config(path: str) -> dict | None:
    """The data section of the teacher's run, used as defaults for the student's run."""
    model_file = resolve_model_path(path)
    config = model_file.parent / "config.yaml"
    if not config.is_file():
        return None
    return RunDirectory(model_file.parent).read_config().get("data")


@dataclass
class RunRequest:
    """One resolved run, handed to the procedure its method names."""

    out: Path
    data_cfg: DataConfig
    train_cfg: TrainConfig
    distill_cfg: DistillConfig | None
    beta: float
    record: dict
    resume: bool
    progress: bool
    # Set by train_one once the teacher is read: its own resolution when it differs.
    teacher_view: TeacherView | None = None


# How a run of a method is trained, keyed by the loss's ``procedure`` attribute: "single"
# (one student, the loss per step, here), "mutual" (dml, engine/mutual.py), "generations"
# (born-again, engine/born_again.py). A method with a new training scheme adds an entry.
PROCEDURES: Registry[Callable[[RunRequest], dict]] = Registry("training procedure")


def method_loss(distill_cfg: DistillConfig | None, train_cfg: TrainConfig) -> DistillationLoss:
    """The run's loss: the method's, or plain cross-entropy when there is no distillation."""
    if distill_cfg is None:
        return build_distill_loss("none", label_smoothing=train_cfg.label_smoothing)
    return build_method_loss(distill_cfg.method, alpha=distill_cfg.alpha,
                             temperature=distill_cfg.temperature,
                             label_smoothing=train_cfg.label_smoothing,
                             options=distill_cfg.method_options)


def run_training(out: str | Path, data_cfg: DataConfig, train_cfg: TrainConfig,
                 distill_cfg: DistillConfig | None = None, *, resume: bool = False,
                 progress: bool = True) -> dict:
    out = Path(out)
    train_cfg.validate()
    distributed.setup(train_cfg.device)
    # The config on disk names what was actually used, not "whatever the environment said".
    if data_cfg.data_root is None:
        data_cfg = replace(data_cfg, data_root=str(default_data_root()))
    data_cfg = model_input_data(data_cfg, train_cfg)
    if distill_cfg is not None and distill_cfg.teacher:
        distill_cfg = replace(distill_cfg, teacher=str(Path(distill_cfg.teacher).expanduser().resolve()))
    beta = distill_cfg.validate() if distill_cfg is not None else 0.0
    if distill_cfg is not None:
        distill_cfg.check_teacher()
    record = {
        "kind": "distill" if distill_cfg is not None else "train",
        "data": asdict(data_cfg),
        "train": asdict(train_cfg),
        # β resolved here, before the --resume comparison with the config on disk.
        "distill": ({**asdict(distill_cfg), "nuclear_beta_resolved": beta}
                    if distill_cfg is not None else None),
    }
    # Only read for its procedure: each procedure builds the loss it trains with at the
    # point where its RNG draws (if any) belong.
    procedure = PROCEDURES.get(method_loss(distill_cfg, train_cfg).procedure)
    return procedure(RunRequest(out, data_cfg, train_cfg, distill_cfg, beta, record,
                                resume, progress))


DistillerBuilder = Callable[[RunRequest, PreparedData, "torch.nn.Module | None"], torch.nn.Module]


def train_one(req: RunRequest, build_distiller: DistillerBuilder) -> dict:
    """Everything a run of one trainer does around the distiller ``build_distiller`` makes
    (called right after seeding, with the prepared data and the teacher, if given)."""
    check_run_dir(req.out, req.resume)
    check_resume_config(req.out, req.record, req.resume)
    # The teacher is loaded before seeding: building it draws from the global RNG, and
    # whatever is initialised after the student (a FitNet regressor) must draw exactly
    # what it draws in a fused sweep, where the teacher is loaded once up front.
    distill_cfg = req.distill_cfg
    teacher = teacher_meta = None
    if distill_cfg is not None and distill_cfg.teacher:
        teacher, teacher_meta = load_teacher(distill_cfg.teacher)
        req.teacher_view = TeacherView.for_teacher(teacher_meta, req.data_cfg.image_size)
    extra = (req.teacher_view.image_size,) if req.teacher_view is not None else ()
    # Rank 0 decodes and caches the data first; the barrier also keeps the checks above
    # ahead of rank 0's first write.
    with distributed.main_first():
        data = prepare_data(req.data_cfg, extra, progress=req.progress and distributed.is_main())
    if teacher is not None:
        check_teacher_data(distill_cfg.teacher, teacher_meta, data)
    seed_everything(req.train_cfg.seed)
    distiller = build_distiller(req, data, teacher)
    trainer = Trainer(req.out, data, distiller, req.train_cfg, req.record,
                      model_meta(req.train_cfg.model, data), progress=req.progress)
    return trainer.fit(resume=req.resume)


def single_distiller(req: RunRequest, data: PreparedData,
                     teacher: torch.nn.Module | None) -> Distiller:
    """One student and the method's loss (plain cross-entropy for a ``train`` run)."""
    cfg, distill_cfg = req.train_cfg, req.distill_cfg
    student = build_model(cfg.model, data.num_classes, req.data_cfg.image_size,
                          pretrained=cfg.pretrained)
    loss = method_loss(distill_cfg, cfg)
    if distill_cfg is None:
        return Distiller(student, loss)
    return Distiller(student, loss, teacher=teacher, nuclear_beta=req.beta,
                     student_layers=distill_cfg.student_layers,
                     teacher_layers=distill_cfg.teacher_layers,
                     example_input=example_input(req.data_cfg.image_size),
                     teacher_view=req.teacher_view)


@PROCEDURES.register("single")
def train_single(req: RunRequest) -> dict:
    return train_one(req, single_distiller)


def load_run_config(run_dir: Path) -> tuple[DataConfig, TrainConfig, DistillConfig | None]:
    record = RunDirectory(run_dir).read_config()
    data_cfg = from_dict(DataConfig, record["data"], "data")
    train_cfg = from_dict(TrainConfig, record["train"], "train")
    distill = record.get("distill")
    distill_cfg = None
    if distill:
        distill = {k: v for k, v in distill.items() if k != "nuclear_beta_resolved"}
        distill_cfg = from_dict(DistillConfig, distill, "distill")
    return data_cfg, train_cfg, distill_cfg


# Procedures of the methods that train otherwise; imported last because they build on
# this module (their registration is all that is needed here).
from rsdistill.engine import born_again, mutual  # noqa: E402,F401
