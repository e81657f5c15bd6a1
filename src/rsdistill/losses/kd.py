"""Hinton et al. (2015) knowledge distillation: ``alpha * L_soft + (1 - alpha) * L_hard``.

Returns ``{"soft": L_soft, "hard": L_hard}`` unweighted; the distiller weighs ``soft``
by alpha and ``hard`` by 1 - alpha.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from rsdistill.losses.base import (
    DistillationLoss,
    HARD,
    SOFT,
    StepInputs,
    check_label_smoothing,
    check_temperature,
)
from rsdistill.losses.method import Method, register_method
from rsdistill.losses.supervised import hard_term


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
    """``{"soft": L_soft, "hard": L_hard}``, blended by the distiller.

    At ``alpha = 0`` the soft term is not computed, so the teacher's logits are not
    needed (they may be ``None``), and at ``alpha = 1`` the labels are ignored.
    """

    term_roles = {"soft": SOFT, "hard": HARD}

    def __init__(self, temperature: float, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)
        self.label_smoothing = check_label_smoothing(label_smoothing)

    def terms(self, inputs: StepInputs) -> dict[str, Callable[[], torch.Tensor]]:
        def soft() -> torch.Tensor:
            if inputs.teacher_logits is None:
                raise ValueError("KDLoss's soft term needs teacher logits")
            return kd_soft_loss(inputs.student_logits, inputs.teacher_logits, self.temperature)

        return {"soft": soft, "hard": hard_term("kd", inputs.student_logits, inputs.labels,
                                                self.label_smoothing)}

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, label_smoothing={self.label_smoothing}"


register_method(Method("kd", "Hinton et al. 2015: T²·KL(p_t ‖ p_s) at --temperature",
                       factory=KDLoss))
