"""Plain supervised training: the no-distillation baseline every KD run is compared to."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from rsdistill.losses.base import DistillationLoss, StepInputs, check_label_smoothing
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


def hard_term(owner: str, logits: torch.Tensor, labels: torch.Tensor | None,
              label_smoothing: float = 0.0) -> Callable[[], torch.Tensor]:
    """The ``hard`` term of a blended loss, computed when the distiller calls it.

    The labels are read only then (``alpha < 1``), so an ``alpha = 1`` run needs none.
    """
    def compute() -> torch.Tensor:
        if labels is None:
            raise ValueError(f"the {owner!r} loss's hard term needs labels")
        return hard_loss(logits, labels, label_smoothing)

    return compute


class CrossEntropyLoss(DistillationLoss):
    """``{"hard": CE(student, labels)}``, not blended: its weight is 1 whatever
    ``--alpha`` says; the teacher is never used (may be ``None``)."""

    needs_teacher = False
    term_roles = {"hard": None}

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = check_label_smoothing(label_smoothing)

    def terms(self, inputs: StepInputs) -> dict[str, Callable[[], torch.Tensor]]:
        return {"hard": hard_term("none", inputs.student_logits, inputs.labels,
                                  self.label_smoothing)}

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}"


register_method(Method("none", "no distillation: cross-entropy with the labels (a train run)",
                       factory=CrossEntropyLoss, teacher=False))
