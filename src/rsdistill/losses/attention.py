"""Attention transfer (Zagoruyko & Komodakis, ICLR 2017): match where each stage "looks".

A stage's spatial attention map is the channel mean of ``|a|^p``, flattened and
L2-normalised, so only its shape counts, not its scale: a student with 4x fewer
channels than its teacher can still match it, and no regressor is needed.

``{"at": at_weight / 2 * sum_j mean((q_s^j - q_t^j)^2), "hard": L_hard}`` over matched
stage pairs ``j``, unweighted; the distiller weighs ``at`` by alpha and ``hard`` by
1 - alpha.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from rsdistill.errors import ConfigError
from rsdistill.losses.base import (
    DistillationLoss,
    HARD,
    SOFT,
    StepInputs,
    check_label_smoothing,
    check_weight,
)
from rsdistill.losses.spatial import resize_to
from rsdistill.losses.method import Method, register_method
from rsdistill.losses.supervised import hard_term
from rsdistill.runtime.hooks import probe_feature_maps

# The paper's beta = 1000 "divided by the number of elements in the attention map and
# batch size" (that is, a mean), applied as beta / 2 in its Eq. 2 and in its code
# (``args.beta / 2 * sum(at_losses)``); kept as the same convention here, so the value
# carries over from the paper. With alpha = 0.5 the AT : CE ratio equals the paper's.
DEFAULT_AT_WEIGHT = 1000.0
# The paper's p = 2: a sum of squares weights the most active positions more than p = 1
# and was its best choice.
DEFAULT_AT_P = 2.0


def attention_map(features: torch.Tensor, p: float = DEFAULT_AT_P) -> torch.Tensor:
    """``mean_c |a_c|^p`` of an ``(N, C, H, W)`` map: ``(N, H, W)``, in float32.

    float32 because squaring bf16 activations loses the small values the later
    normalisation brings back up.
    """
    return features.float().abs().pow(p).mean(dim=1)


def normalized(attention: torch.Tensor) -> torch.Tensor:
    """An ``(N, H, W)`` attention map flattened to ``(N, H*W)`` and L2-normalised per sample."""
    return F.normalize(attention.flatten(1), p=2.0, dim=1)


def at_pair_loss(student_map: torch.Tensor, teacher_map: torch.Tensor,
                 p: float = DEFAULT_AT_P) -> torch.Tensor:
    """``mean((q_s - q_t)^2)`` for one stage pair; the student's map is brought to the
    teacher's spatial size first (pooled when larger, interpolated when smaller)."""
    a_t = attention_map(teacher_map.detach(), p)
    a_s = resize_to(attention_map(student_map, p), a_t.shape[-2:])
    return (normalized(a_s) - normalized(a_t)).pow(2).mean()


class AttentionTransferLoss(DistillationLoss):
    """Attention transfer over every matched pair of tapped stages."""

    uses_features = True
    term_roles = {"at": SOFT, "hard": HARD}

    def __init__(self, label_smoothing: float = 0.0,
                 at_weight: float = DEFAULT_AT_WEIGHT, at_p: float = DEFAULT_AT_P) -> None:
        super().__init__()
        self.label_smoothing = check_label_smoothing(label_smoothing)
        self.at_weight = check_weight("at_weight", at_weight)
        self.at_p = check_weight("at_p", at_p)
        if not self.at_p > 0.0:
            raise ConfigError(f"at_p must be > 0, got {at_p!r}")

    def setup(self, student: nn.Module, teacher: nn.Module | None,
              student_layers: tuple[str, ...], teacher_layers: tuple[str, ...],
              example_input: torch.Tensor, teacher_input: torch.Tensor | None = None) -> None:
        if len(student_layers) != len(teacher_layers):
            raise ConfigError(
                f"at pairs student and teacher layers one to one, got {len(student_layers)} "
                f"student and {len(teacher_layers)} teacher layers; pass as many names to "
                "--student-layers as to --teacher-layers")
        if teacher is None:
            raise ConfigError("at needs a teacher")
        # Nothing to build; the dry run only checks that every layer gives a 4-D map, so
        # a wrong choice fails here rather than at the first training step.
        probe_feature_maps(student, student_layers, example_input, "student")
        probe_feature_maps(teacher, teacher_layers,
                           example_input if teacher_input is None else teacher_input, "teacher")

    def terms(self, inputs: StepInputs) -> dict[str, Callable[[], torch.Tensor]]:
        student_features, teacher_features = inputs.student_features, inputs.teacher_features

        def transfer() -> torch.Tensor:
            if not student_features or not teacher_features or \
                    len(student_features) != len(teacher_features):
                raise ValueError("AttentionTransferLoss needs matched lists of student and "
                                 "teacher features")
            pairs = [at_pair_loss(s, t, self.at_p)
                     for s, t in zip(student_features, teacher_features)]
            return (self.at_weight / 2.0) * torch.stack(pairs).sum()

        return {"at": transfer, "hard": hard_term("at", inputs.student_logits, inputs.labels,
                                                  self.label_smoothing)}

    def extra_repr(self) -> str:
        return (f"at_weight={self.at_weight}, at_p={self.at_p}, "
                f"label_smoothing={self.label_smoothing}")


register_method(Method("at", "Zagoruyko & Komodakis, ICLR 2017: at_weight/2·Σ_j mean((q_s−q_t)²), "
                             "q = L2-normalised channel mean of |a|^p", factory=AttentionTransferLoss))
