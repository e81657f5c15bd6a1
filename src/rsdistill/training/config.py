"""The training section of a run's config: schedule, optimiser, precision, measurement."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields

from rsdistill.config import option
from rsdistill.errors import ConfigError
from rsdistill.losses import check_label_smoothing
from rsdistill.models.imagenet import IMAGENET
from rsdistill.runtime import distributed
from rsdistill.runtime.optim import OPTIMIZERS, SCHEDULES
from rsdistill.runtime.precision import PRECISIONS

log = logging.getLogger(__name__)

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


# One meaning everywhere: 0 leaves the count to torch (OMP_NUM_THREADS when set, else
# one per core), for torch and onnxruntime timings alike (export/ort_backend.py).
THREADS_ZERO = "0 = torch's thread count: OMP_NUM_THREADS when set, else one per core"


@dataclass
class TrainConfig:
    """The training section; each field that is an option declares its flag and help
    here (``rsdistill.config.option``), so its default is written once."""

    model: str = option("resnet8", help="model name (see 'rsdistill models list'), e.g. "
                        "resnet8x4 or timm:resnet18")
    epochs: int = option(60, help="epochs")
    batch_size: int = option(32, help="batch size")
    optimizer: str = option("sgd", help="sgd or adamw")
    lr: float = option(0.05, help="peak learning rate")
    momentum: float = option(0.9, help="SGD momentum")
    weight_decay: float = option(5e-4, help="weight decay")
    schedule: str = option("cosine", help="cosine, onecycle or constant")
    warmup_epochs: int = option(0, help="epochs of linear learning-rate warm-up")
    label_smoothing: float = option(0.0, help="label smoothing of the hard loss")
    seed: int = option(0, help="seeds model init, batches and augmentation")
    device: str = option("auto", help="auto (CUDA if present, else CPU), cpu, cuda")
    precision: str = option("auto", choices=PRECISIONS,
                            help="auto = by the hardware: on a CPU bf16 autocast + "
                                 "channels_last where bf16 is native, else fp32 + "
                                 "channels_last; bf16 or fp16 on CUDA; fp32 = plain")
    inference_precision: str = option("fp32", choices=PRECISIONS,
                                      help="precision for the latency/throughput figures")
    latency_runs: int = option(100, help="timed batch-1 calls for the latency figures")
    inference_threads: int = option(0, help="CPU threads for the latency figures",
                                    shown=f"0; {THREADS_ZERO}")
    pretrained: str | None = option(
        None, metavar="imagenet|PATH", shown="none: random initialisation",
        help="start from ImageNet weights (timm: models; offline for "
             "timm:tf_efficientnet_lite0 with the 'pretrained' extra, else timm downloads "
             "them; the data is normalised as the weights expect and the fine-tuning recipe "
             "fills in the training options not given) or from a local state dict (.pt)")
    # Under torchrun on GPUs: BatchNorm statistics over the global batch. Part of the
    # config (saved, checked on --resume) because it changes what the run computes.
    sync_bn: bool = option(False, help="under torchrun on GPUs: SyncBatchNorm, batch "
                           "statistics over the global batch instead of each process's shard")
    # The learning rate of the student's pretrained layers (all but the classifier) as a
    # fraction of --lr: a new head learns fast while the backbone moves gently.
    backbone_lr_scale: float = option(1.0, help="learning rate of every layer but the "
                                      "classifier, as a fraction of --lr, for fine-tuning "
                                      "pretrained weights")
    # "auto": when every view of a training image is one of the eight flips/rotations
    # (no crops, no mixing), the teacher's logits for all of them are computed once
    # instead of once per batch (training/teacher_cache.py); "off": always online.
    teacher_cache: str = option(
        "auto", choices=TEACHER_CACHE,
        help="auto: with flips/rotations as the only augmentation, the teacher's logits of "
             "all eight views of each image are computed once; off: the teacher runs on "
             "every batch; bank: the teacher labels --bank-rounds rounds of augmented views "
             "(crops, mixing) once, kept in the cache and reused, and the student trains "
             "with no teacher pass")
    # --teacher-cache bank: the teacher labels this many rounds of augmented views once
    # (training/view_bank.py), drawn from this seed; epoch e trains on round e mod R.
    bank_rounds: int = option(8, help="--teacher-cache bank: rounds of views, epoch e reads "
                              "round e mod R")
    bank_seed: int = option(0, help="--teacher-cache bank: seed of the views' draws, "
                            "independent of --seed so students of every seed share one bank")

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


def recipe_notes() -> dict[str, str]:
    """Per option, the fine-tuning recipe's other default, for the help texts."""
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    return {k: f"; {v:g} with --pretrained imagenet" if isinstance(v, float) else
            f"; {v} with --pretrained imagenet"
            for k, v in FINE_TUNE_RECIPE.items() if v != defaults[k]}


def recipe_fill(given: dict) -> dict:
    """The fine-tuning recipe's values of the training options not ``given``."""
    return {k: v for k, v in FINE_TUNE_RECIPE.items() if k not in given}


def train_config_from(given: dict) -> TrainConfig:
    """The training section from the options given: with ``--pretrained imagenet`` the
    fine-tuning recipe fills in the options left out, else TrainConfig's defaults do."""
    filled = recipe_fill(given) if given.get("pretrained") == IMAGENET else {}
    if filled:
        log.info("--pretrained imagenet: fine-tuning recipe %s (options given on the command "
                 "line win)", ", ".join(f"{k}={v}" for k, v in filled.items()))
    return TrainConfig(**{**filled, **given})
