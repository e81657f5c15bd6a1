"""The student, an optional frozen teacher, and the named loss terms that train it.

Like mdistiller's ``Distiller``: ``forward_train`` returns the student's logits and a
dict of named, already weighted loss terms; the training loop only sums them. A new
method is a new loss class, never a change to the loop.
"""

from __future__ import annotations

import torch
from torch import nn

from rsdistill.losses import DistillationLoss, NuclearNormPenalty, effective_rank, nuclear_norm
from rsdistill.models import first_weight_layer


class Distiller(nn.Module):
    def __init__(self, student: nn.Module, loss: DistillationLoss,
                 teacher: nn.Module | None = None, nuclear_beta: float = 0.0) -> None:
        super().__init__()
        self.student = student
        self.loss = loss
        self.teacher = teacher
        if teacher is not None:
            teacher.eval()
            for p in teacher.parameters():
                p.requires_grad_(False)
        self.nuclear = NuclearNormPenalty(nuclear_beta) if nuclear_beta > 0 else None
        self.first_layer_name, self.first_layer = first_weight_layer(student)

    def train(self, mode: bool = True) -> "Distiller":
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()  # frozen: batch-norm statistics must not drift
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Student parameters plus any the loss learns (e.g. FitNet regressors)."""
        return [p for name, p in self.named_parameters()
                if p.requires_grad and not name.startswith("teacher.")]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.student(images)

    def forward_train(self, images: torch.Tensor, labels: torch.Tensor,
                      teacher_images: torch.Tensor | None = None,
                      teacher_logits: torch.Tensor | None = None,
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``teacher_logits`` may be given when computed once for several students."""
        logits = self.student(images)
        if teacher_logits is None and self.teacher is not None and self.loss.needs_teacher:
            with torch.no_grad():
                teacher_logits = self.teacher(images if teacher_images is None else teacher_images)
        terms = dict(self.loss(logits, teacher_logits, labels))
        if self.nuclear is not None:
            terms.update(self.nuclear(self.first_layer.weight))
        return logits, terms

    def first_layer_stats(self) -> dict[str, float]:
        return weight_stats(self.first_layer.weight)


@torch.no_grad()
def weight_stats(weight: torch.Tensor) -> dict[str, float]:
    """Nuclear norm and effective rank of a weight read as a matrix."""
    w = weight.detach()
    return {"nuclear_norm": float(nuclear_norm(w)), "effective_rank": effective_rank(w)}
