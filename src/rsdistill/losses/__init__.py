"""Distillation losses, dispatched by name through :data:`DISTILL_LOSSES`.

Importing this package registers every method ("kd", "none"); add a method by
writing one module that registers its class and importing it here.
"""

from __future__ import annotations

import inspect

from rsdistill.errors import ConfigError
from rsdistill.losses.base import (
    DISTILL_LOSSES,
    DistillationLoss,
    check_alpha,
    check_beta,
    check_label_smoothing,
    check_temperature,
    total_loss,
)
from rsdistill.losses.kd import KDLoss, kd_soft_loss
from rsdistill.losses.nuclear import (
    NuclearNormPenalty,
    effective_rank,
    nuclear_norm,
    resolve_beta,
    singular_values,
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


__all__ = [
    "DISTILL_LOSSES",
    "CrossEntropyLoss",
    "DistillationLoss",
    "KDLoss",
    "NuclearNormPenalty",
    "build_distill_loss",
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
