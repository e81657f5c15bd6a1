"""Plain supervised training: the no-distillation baseline every KD run is compared to."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from rsdistill.losses.base import DistillationLoss, StepInputs, check_label_smoothing, zero_term
from rsdistill.losses.method import Method, register_method


def hard_loss(
    student_logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy with the true labels, in float32 so bf16 logits do not lose the mean.

    Images labelled -100 (a transfer set's, unlabelled) are left out of the mean; a batch
    of only such images has no label term (0, where cross-entropy would give nan).
    """
    if not labels.is_floating_point() and not bool((labels >= 0).any()):
        return student_logits.float().sum() * 0.0
    return F.cross_entropy(student_logits.float(), labels, label_smoothing=label_smoothing)


def blend_with_hard(
    name: str,
    alpha: float,
    method_loss: Callable[[], torch.Tensor],
    student_logits: torch.Tensor,
    labels: torch.Tensor | None,
    label_smoothing: float = 0.0,
) -> dict[str, torch.Tensor]:
    """``{name: alpha * method_loss(), "hard": (1 - alpha) * L_hard}``, the weighting of
    every distillation method.

    ``method_loss`` is called only when ``alpha > 0`` and the labels are read only when
    ``alpha < 1``: a term whose weight is 0 is a float32 zero and is not computed, so it
    cannot turn the total into nan (``0 * nan``) and costs nothing.
    """
    if alpha > 0.0:
        method = alpha * method_loss()
    else:
        method = zero_term(student_logits)
    if alpha < 1.0:
        if labels is None:
            raise ValueError(f"the {name!r} loss with alpha={alpha} needs labels")
        hard = (1.0 - alpha) * hard_loss(student_logits, labels, label_smoothing)
    else:
        hard = zero_term(student_logits)
    return {name: method, "hard": hard}


class CrossEntropyLoss(DistillationLoss):
    """``{"hard": CE(student, labels)}``; the teacher is never used (may be ``None``)."""

    needs_teacher = False

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = check_label_smoothing(label_smoothing)

    def forward(self, inputs: StepInputs) -> dict[str, torch.Tensor]:
        if inputs.labels is None:
            raise ValueError("CrossEntropyLoss needs labels")
        return {"hard": hard_loss(inputs.student_logits, inputs.labels, self.label_smoothing)}

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}"


register_method(Method("none", "no distillation: cross-entropy with the labels (a train run)",
                       factory=CrossEntropyLoss, teacher=False))
