"""Distillation methods and their losses, looked up by name in :data:`METHODS`.

Importing this package registers every method ("kd", "fm", "dkd", "fitnet", "at", "dml",
"self", "none"); a new method is one module that registers its :class:`Method` and is
imported here.
"""

from __future__ import annotations

from rsdistill.losses import attention, dkd, fitnet, fm, kd, mutual, self_distill, supervised  # noqa: F401
from rsdistill.losses.attention import AttentionTransferLoss, at_pair_loss, attention_map
from rsdistill.losses.base import (
    HARD,
    SOFT,
    DistillationLoss,
    StepInputs,
    blend_alpha,
    check_alpha,
    check_beta,
    check_label_smoothing,
    check_temperature,
    reads_teacher,
    total_loss,
    weighted_terms,
)
from rsdistill.losses.dkd import DKDLoss, dkd_parts, warmup_factor
from rsdistill.losses.fitnet import FitNetLoss
from rsdistill.losses.kd import KDLoss, kd_soft_loss
from rsdistill.losses.method import (
    DEFAULT_ALPHA,
    DEFAULT_TEMPERATURE,
    METHODS,
    SHARED_SETTINGS,
    Method,
    MethodConfig,
    build_method,
    check_layers,
    default_temperature,
    method_descriptor,
    method_option_names,
    methods_help,
)
from rsdistill.losses.mutual import MutualLoss, parse_peers
from rsdistill.losses.nuclear import (
    NuclearNormPenalty,
    effective_rank,
    nuclear_norm,
    resolve_beta,
    singular_values,
)
from rsdistill.losses.self_distill import (
    SELF_VARIANTS,
    GenerationsPlan,
    TeacherFreeLoss,
    teacher_free_soft_loss,
    virtual_teacher,
)
from rsdistill.losses.supervised import CrossEntropyLoss, hard_loss

__all__ = [
    "DEFAULT_ALPHA", "DEFAULT_TEMPERATURE", "HARD", "METHODS", "SOFT", "SELF_VARIANTS", "SHARED_SETTINGS",
    "AttentionTransferLoss", "CrossEntropyLoss", "DKDLoss", "DistillationLoss", "FitNetLoss",
    "GenerationsPlan", "KDLoss", "Method", "MethodConfig", "MutualLoss", "NuclearNormPenalty",
    "StepInputs", "TeacherFreeLoss",
    "at_pair_loss", "attention_map", "blend_alpha", "build_method", "check_alpha", "check_beta",
    "check_label_smoothing", "check_layers", "check_temperature", "default_temperature",
    "dkd_parts", "effective_rank", "hard_loss", "kd_soft_loss", "method_descriptor",
    "method_option_names", "methods_help", "nuclear_norm", "parse_peers", "reads_teacher",
    "resolve_beta",
    "singular_values", "teacher_free_soft_loss", "total_loss", "virtual_teacher",
    "warmup_factor", "weighted_terms",
]
