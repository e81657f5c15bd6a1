"""Nuclear norm of the student's first weight layer, the study's low-rank penalty.

The penalty ``beta * ||W_1||_*`` (the sum of the singular values) is the convex
surrogate of rank: it pushes the stem's filters towards a low-dimensional span.
A conv kernel ``(out, in, k, k)`` is read as the ``(out, in*k*k)`` matrix that maps
an input patch to the output channels, the linear map the conv actually applies.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from rsdistill.errors import ConfigError
from rsdistill.losses.base import check_alpha, check_beta, zero_term


def _as_matrix(weight: torch.Tensor) -> torch.Tensor:
    if weight.ndim < 2:
        raise ValueError(
            "the nuclear norm needs a weight matrix or conv kernel, "
            f"got shape {tuple(weight.shape)}"
        )
    w = weight.reshape(weight.shape[0], -1)
    # SVD in half precision is unsupported or inaccurate; float64 is kept for gradcheck.
    return w if w.dtype == torch.float64 else w.float()


def singular_values(weight: torch.Tensor) -> torch.Tensor:
    """Singular values (descending, float32 or float64) of ``weight`` read as a matrix."""
    w = _as_matrix(weight)
    # Autocast would otherwise be free to hand the SVD a lower-precision copy.
    with torch.autocast(device_type=w.device.type, enabled=False):
        return torch.linalg.svdvals(w)


def nuclear_norm(weight: torch.Tensor) -> torch.Tensor:
    """``||W||_*``, differentiable; its gradient is ``U V^T`` of the reduced SVD."""
    w = _as_matrix(weight)
    with torch.autocast(device_type=w.device.type, enabled=False):
        return torch.linalg.matrix_norm(w, ord="nuc")


def effective_rank(weight: torch.Tensor, rel_threshold: float = 0.01) -> int:
    """Number of singular values larger than ``rel_threshold`` times the largest.

    An exact rank is useless on trained weights (noise makes every matrix full rank);
    a relative cut counts the directions that carry a non-negligible share.
    """
    if not (math.isfinite(rel_threshold) and 0.0 <= rel_threshold < 1.0):
        raise ConfigError(f"rel_threshold must be in [0, 1), got {rel_threshold!r}")
    with torch.no_grad():
        s = singular_values(weight.detach())
    if s.numel() == 0 or s[0] <= 0:
        return 0
    return int((s > rel_threshold * s[0]).sum().item())


def resolve_beta(value: object, alpha: float) -> float:
    """The penalty weight from a config value: a number, a numeric string, or ``"alpha"``.

    ``"alpha"`` ties the penalty to the distillation weight (``beta = alpha``), as the
    study does, so a sweep over alpha moves both together.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "alpha":
            return check_alpha(alpha)
        try:
            number = float(text)
        except ValueError:
            raise ConfigError(
                f"beta must be a number >= 0 or the string 'alpha', got {value!r}"
            ) from None
        return check_beta(number)
    return check_beta(value)


class NuclearNormPenalty(nn.Module):
    """``{"nuclear": beta * ||W||_*}`` for the weight passed to :meth:`forward`."""

    def __init__(self, beta: float) -> None:
        super().__init__()
        self.beta = check_beta(beta)

    def forward(self, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.beta == 0.0:
            # An SVD per step for a term that is multiplied by 0 is wasted work.
            return {"nuclear": zero_term(weight)}
        return {"nuclear": self.beta * nuclear_norm(weight)}

    def extra_repr(self) -> str:
        return f"beta={self.beta}"
