"""Plain supervised training: the no-distillation baseline every KD run is compared to."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rsdistill.losses.base import DISTILL_LOSSES, DistillationLoss, check_label_smoothing


def hard_loss(
    student_logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy with the true labels, in float32 so bf16 logits do not lose the mean."""
    return F.cross_entropy(student_logits.float(), labels, label_smoothing=label_smoothing)


@DISTILL_LOSSES.register("none")
class CrossEntropyLoss(DistillationLoss):
    """``{"hard": CE(student, labels)}``; the teacher is never used (may be ``None``)."""

    needs_teacher = False

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = check_label_smoothing(label_smoothing)

    def forward(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **extra: object,
    ) -> dict[str, torch.Tensor]:
        if labels is None:
            raise ValueError("CrossEntropyLoss needs labels")
        return {"hard": hard_loss(student_logits, labels, self.label_smoothing)}

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}"
