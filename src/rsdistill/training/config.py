"""The training section of a run's config: schedule, optimiser, precision, measurement."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rsdistill.errors import ConfigError
from rsdistill.losses import check_label_smoothing
from rsdistill.runtime import distributed
from rsdistill.runtime.optim import OPTIMIZERS, SCHEDULES
from rsdistill.runtime.precision import PRECISIONS


TEACHER_CACHE = ("auto", "off", "bank")

# The fine-tuning recipe for ImageNet-pretrained weights, chosen on the validation split
# of UC Merced at 128 px (bench/RESULTS.md): what `--pretrained imagenet` uses for the
# training options a command line leaves out (from-scratch runs keep TrainConfig's
# defaults). AdamW reached 83-84 % val after one epoch where SGD reached 57 %; the new
# head learns at 2e-3, the pretrained layers at 1e-3.
FINE_TUNE_RECIPE: dict[str, object] = {
    "epochs": 10,
    "optimizer": "adamw",
    "lr": 2e-3,
    "weight_decay": 0.01,
    "schedule": "cosine",
    "warmup_epochs": 1,
    "label_smoothing": 0.1,
    "backbone_lr_scale": 0.5,
}


@dataclass
class TrainConfig:
    model: str = "resnet8"
    epochs: int = 60
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    inference_precision: str = "fp32"
    latency_runs: int = 100
    inference_threads: int = 0  # 0 = torch's thread count (OMP_NUM_THREADS, else the cores)
    pretrained: str | None = None
    # Under torchrun on GPUs: BatchNorm statistics over the global batch. Part of the
    # config (saved, checked on --resume) because it changes what the run computes.
    sync_bn: bool = False
    # The learning rate of the student's pretrained layers (all but the classifier) as a
    # fraction of --lr: a new head learns fast while the backbone moves gently.
    backbone_lr_scale: float = 1.0
    # "auto": when every view of a training image is one of the eight flips/rotations
    # (no crops, no mixing), the teacher's logits for all of them are computed once
    # instead of once per batch (training/teacher_cache.py); "off": always online.
    teacher_cache: str = "auto"
    # --teacher-cache bank: the teacher labels this many rounds of augmented views once
    # (training/view_bank.py), drawn from this seed; epoch e trains on round e mod R.
    bank_rounds: int = 8
    bank_seed: int = 0

    def validate(self) -> None:
        if self.inference_threads < 0:
            raise ConfigError(f"--inference-threads must be >= 0, got {self.inference_threads}")
        for name in ("epochs", "batch_size", "latency_runs", "bank_rounds"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        # Also catches nan; torch would raise a bare ValueError (a traceback) for these.
        for name in ("weight_decay", "momentum", "backbone_lr_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"--{name.replace('_', '-')} must be a number >= 0, got {value}")
        if self.warmup_epochs < 0:
            raise ConfigError(f"--warmup-epochs must be >= 0, got {self.warmup_epochs}")
        # Names are checked here, before any data is decoded.
        OPTIMIZERS.get(self.optimizer)
        SCHEDULES.get(self.schedule)
        for name in ("precision", "inference_precision"):
            if getattr(self, name) not in PRECISIONS:
                raise ConfigError(f"invalid --{name.replace('_', '-')} {getattr(self, name)!r}; "
                                  f"choose one of: {', '.join(PRECISIONS)}")
        if self.teacher_cache not in TEACHER_CACHE:
            raise ConfigError(f"--teacher-cache must be one of {', '.join(TEACHER_CACHE)}, "
                              f"got {self.teacher_cache!r}")
        check_label_smoothing(self.label_smoothing)
        distributed.check_config(self.batch_size, self.device, self.sync_bn)
