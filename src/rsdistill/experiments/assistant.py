"""A teacher-assistant chain (Mirzadeh et al., AAAI 2020): teacher → assistant → student.

When the teacher is far stronger than the student (or reads far more pixels), its soft
labels are partly unlearnable for the student. An assistant of intermediate size or
resolution is first distilled from the teacher (plain KD), then teaches the student in its
place. The assistant is an ordinary ``distill`` run in ``<out>/assistant`` (resumable,
evaluable); the student's run names it as its teacher, so the chain is on record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from rsdistill.data.module import DataConfig
from rsdistill.errors import ConfigError
from rsdistill.experiments.procedures import run_training
from rsdistill.experiments.records import DistillConfig
from rsdistill.losses import DEFAULT_ALPHA, DEFAULT_TEMPERATURE, check_alpha, check_temperature
from rsdistill.runtime.rundir import ASSISTANT_DIR, METRICS_FILE
from rsdistill.training.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class AssistantConfig:
    """The assistant: its model ("" = no assistant), input size and epochs (None = the
    student's), and the KD weight and temperature it learns from the teacher with."""

    model: str = ""
    image_size: int | None = None
    epochs: int | None = None
    alpha: float = DEFAULT_ALPHA
    temperature: float = DEFAULT_TEMPERATURE

    @property
    def enabled(self) -> bool:
        return bool(self.model)

    def validate(self) -> None:
        if not self.enabled:
            return
        check_alpha(self.alpha)
        check_temperature(self.temperature)
        for name in ("image_size", "epochs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"the assistant's {name} must be >= 1, got {value}")


def parse_assistant(text: str | None, epochs: int | None = None) -> AssistantConfig:
    """``MODEL`` or ``MODEL@SIZE`` (e.g. ``resnet8x4@64``) from the command line."""
    if not text:
        return AssistantConfig()
    model, sep, size = text.partition("@")
    if not model.strip() or (sep and not size.strip().isdigit()):
        raise ConfigError(f"--assistant takes MODEL or MODEL@SIZE (e.g. resnet8x4@64), got {text!r}")
    cfg = AssistantConfig(model=model.strip(), image_size=int(size) if sep else None,
                          epochs=epochs)
    cfg.validate()
    return cfg


def train_assistant(out: Path, cfg: AssistantConfig, teacher: str, data_cfg: DataConfig,
                    train_cfg: TrainConfig, *, progress: bool = True) -> str:
    """Distils the assistant from ``teacher`` into ``out/assistant`` (continued if it was
    interrupted, skipped if finished); returns the directory, the student's teacher."""
    cfg.validate()
    where = Path(out) / ASSISTANT_DIR
    if (where / METRICS_FILE).is_file():
        log.info("assistant %s: finished earlier, not retrained", where)
        return str(where)
    log.info("teacher assistant %s at %s px, distilled from %s", cfg.model,
             cfg.image_size or data_cfg.image_size, teacher)
    data = replace(data_cfg, image_size=cfg.image_size or data_cfg.image_size)
    train = replace(train_cfg, model=cfg.model, epochs=cfg.epochs or train_cfg.epochs,
                    pretrained=None)
    distill = DistillConfig(method="kd", alpha=cfg.alpha, temperature=cfg.temperature,
                            teacher=teacher)
    run_training(where, data, train, distill, resume=True, progress=progress)
    return str(where)
