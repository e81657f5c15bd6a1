"""Distillation losses, dispatched by name through :data:`DISTILL_LOSSES`.

Importing this package registers every method ("kd", "dkd", "fitnet", "at", "dml",
"self", "none");
add a method by writing one module that registers its class and importing it here.
"""

from __future__ import annotations

import inspect

from rsdistill.errors import ConfigError
from rsdistill.losses.attention import AttentionTransferLoss, at_pair_loss, attention_map
from rsdistill.losses.base import (
    DEFAULT_TEMPERATURE,
    DISTILL_LOSSES,
    DistillationLoss,
    check_alpha,
    check_beta,
    check_label_smoothing,
    check_temperature,
    total_loss,
)
from rsdistill.losses.dkd import DKDLoss, dkd_parts, warmup_factor
from rsdistill.losses.fitnet import FitNetLoss
from rsdistill.losses.kd import KDLoss, kd_soft_loss
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
    BornAgainPlan,
    TeacherFreeLoss,
    teacher_free_soft_loss,
    virtual_teacher,
)
from rsdistill.losses.supervised import CrossEntropyLoss, hard_loss


def build_distill_loss(name: str, **options: object) -> DistillationLoss:
    """The registered loss ``name`` built with ``options``.

    An unknown name, an unknown or missing option, or an invalid value raises
    :class:`ConfigError`.
    """
    cls = DISTILL_LOSSES.get(name)
    # Checked against the signature, not by catching TypeError from the call, so that
    # a TypeError raised inside a constructor (a bug) still surfaces as one.
    params = inspect.signature(cls).parameters
    accepted = [p for p, v in params.items() if v.kind is not v.VAR_KEYWORD]
    takes_any = len(accepted) < len(params)
    unknown = sorted(set(options) - set(accepted))
    if unknown and not takes_any:
        raise ConfigError(
            f"{DISTILL_LOSSES.kind} {name!r} has no option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(accepted) or 'no options'}"
        )
    missing = [p for p in accepted if params[p].default is params[p].empty and p not in options]
    if missing:
        raise ConfigError(f"{DISTILL_LOSSES.kind} {name!r} needs option(s): {', '.join(missing)}")
    return cls(**options)


# Settings every method may use, each set by its own command-line flag and config key;
# the layer lists are read by the distiller, not by a loss constructor.
SHARED_SETTINGS = ("alpha", "temperature", "label_smoothing")
_OWN_FLAGS = (*SHARED_SETTINGS, "student_layers", "teacher_layers")


def method_option_names(name: str) -> list[str]:
    """The options of method ``name`` that only ``--method-option`` sets."""
    params = inspect.signature(DISTILL_LOSSES.get(name)).parameters
    return [p for p, v in params.items() if v.kind is not v.VAR_KEYWORD and p not in _OWN_FLAGS]


def default_temperature(name: str) -> float:
    """The ``T`` of method ``name`` when a run gives none (1 for dml, as in its paper)."""
    return float(getattr(DISTILL_LOSSES.get(name), "default_temperature", DEFAULT_TEMPERATURE))


def build_method_loss(name: str, *, alpha: float, temperature: float,
                      label_smoothing: float = 0.0,
                      options: dict[str, object] | None = None) -> DistillationLoss:
    """Method ``name`` from the run's shared settings plus its own ``options``.

    A shared setting the method does not take is left out (``--temperature`` means
    nothing to FitNet, as the layer flags mean nothing to KD), so one config section
    serves every method. ``options`` are strict: an unknown key, or one that has its own
    flag, is a :class:`ConfigError` naming the keys the method does take.
    """
    options = dict(options or {})
    own = sorted(set(options) & set(_OWN_FLAGS))
    if own:
        raise ConfigError(f"{own[0]} is not a --method-option; set it with "
                          f"--{own[0].replace('_', '-')}")
    accepted = method_option_names(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = (f"its --method-option keys: {', '.join(accepted)}" if accepted
                 else "it takes no --method-option")
        raise ConfigError(f"{DISTILL_LOSSES.kind} {name!r} has no option(s) "
                          f"{', '.join(unknown)}; {takes}")
    params = inspect.signature(DISTILL_LOSSES.get(name)).parameters
    shared = {k: v for k, v in (("alpha", alpha), ("temperature", temperature),
                                ("label_smoothing", label_smoothing)) if k in params}
    return build_distill_loss(name, **shared, **options)


__all__ = [
    "DEFAULT_TEMPERATURE",
    "DISTILL_LOSSES",
    "SELF_VARIANTS",
    "BornAgainPlan",
    "MutualLoss",
    "TeacherFreeLoss",
    "default_temperature",
    "parse_peers",
    "teacher_free_soft_loss",
    "virtual_teacher",
    "SHARED_SETTINGS",
    "AttentionTransferLoss",
    "CrossEntropyLoss",
    "DKDLoss",
    "DistillationLoss",
    "FitNetLoss",
    "KDLoss",
    "NuclearNormPenalty",
    "at_pair_loss",
    "attention_map",
    "build_distill_loss",
    "build_method_loss",
    "dkd_parts",
    "method_option_names",
    "warmup_factor",
    "check_alpha",
    "check_beta",
    "check_label_smoothing",
    "check_temperature",
    "effective_rank",
    "hard_loss",
    "kd_soft_loss",
    "nuclear_norm",
    "resolve_beta",
    "singular_values",
    "total_loss",
]
