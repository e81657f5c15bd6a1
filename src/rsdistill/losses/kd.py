"""Hinton et al. (2015) knowledge distillation: ``alpha * L_soft + (1 - alpha) * L_hard``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rsdistill.losses.base import (
    DistillationLoss,
    StepInputs,
    check_alpha,
    check_label_smoothing,
    check_temperature,
)
from rsdistill.losses.method import Method, register_method
from rsdistill.losses.supervised import blend_with_hard


def kd_soft_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over the batch.

    The gradient with respect to the student logits is identical to that of the
    cross-entropy with the teacher's soft targets, ``-T^2 * sum p_t log p_s``, which
    is how the study names this term: the two differ only by ``T^2`` times the
    teacher's entropy, a constant for the student. KL is used because it is 0 when
    the student matches the teacher, so the logged value is readable.

    The ``T^2`` factor keeps the gradient's size roughly independent of ``T``: the
    gradient of the KL alone is ``(p_s - p_t) / T`` per sample, and for large ``T``
    ``p_s - p_t`` itself shrinks like ``1 / T``, so without it the soft term would fade
    as ``1 / T^2`` relative to the hard term when the temperature is raised.

    The softmaxes run in float32: at T = 4..8 the soft targets differ in the third
    or fourth digit, which bf16's 8-bit mantissa cannot hold.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student and teacher logits differ in shape: "
            f"{tuple(student_logits.shape)} vs {tuple(teacher_logits.shape)}"
        )
    t = float(temperature)
    log_p_student = F.log_softmax(student_logits.float() / t, dim=-1)
    # The teacher is a target: no gradient may reach it even if the caller forgot no_grad.
    log_p_teacher = F.log_softmax(teacher_logits.detach().float() / t, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean")
    return kl * (t * t)


class KDLoss(DistillationLoss):
    """``{"soft": alpha * L_soft, "hard": (1 - alpha) * L_hard}``.

    A term whose weight is 0 is returned as a float32 zero and not computed, so at
    ``alpha = 0`` the teacher's logits are not needed (``needs_teacher`` is then
    ``False`` and they may be ``None``), and at ``alpha = 1`` the labels are ignored.
    """

    def __init__(
        self, alpha: float, temperature: float, label_smoothing: float = 0.0
    ) -> None:
        super().__init__()
        self.alpha = check_alpha(alpha)
        self.temperature = check_temperature(temperature)
        self.label_smoothing = check_label_smoothing(label_smoothing)
        # Lets the trainer skip the teacher's forward pass for an alpha = 0 run.
        self.needs_teacher = self.alpha > 0.0

    def forward(self, inputs: StepInputs) -> dict[str, torch.Tensor]:
        def soft() -> torch.Tensor:
            if inputs.teacher_logits is None:
                raise ValueError(f"KDLoss with alpha={self.alpha} needs teacher logits")
            return kd_soft_loss(inputs.student_logits, inputs.teacher_logits, self.temperature)

        return blend_with_hard("soft", self.alpha, soft, inputs.student_logits, inputs.labels,
                               self.label_smoothing)

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, temperature={self.temperature}, "
            f"label_smoothing={self.label_smoothing}"
        )


register_method(Method("kd", "Hinton et al. 2015: T²·KL(p_t ‖ p_s) at --temperature",
                       factory=KDLoss))
