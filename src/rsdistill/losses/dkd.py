"""Decoupled knowledge distillation (Zhao et al., CVPR 2022).

The KD term splits exactly into two parts (the paper's Eq. 7):

    KL(p_t || p_s) = TCKD + (1 - p_t[target]) * NCKD

TCKD is the KL between the binary distributions (target, everything else), i.e. how
sure each model is of the true class; NCKD is the KL between the distributions over
the non-target classes renormalised among themselves, the "dark knowledge". In KD,
NCKD is damped by ``1 - p_t[target]``, which is small exactly where the teacher is
confident; DKD weights the two parts freely:

    L_DKD = dkd_alpha * TCKD + dkd_beta * NCKD   (both at temperature T, times T^2)

Returns ``{"dkd": ramp(epoch) * L_DKD, "hard": L_hard}`` unweighted; the distiller
weighs ``dkd`` by alpha and ``hard`` by 1 - alpha. The paper's code
ramps the DKD term in linearly over the first ``warmup_epochs`` epochs, because the
large NCKD weight destabilises the first epochs of a randomly initialised student.
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
    check_epochs,
    check_label_smoothing,
    check_temperature,
    check_weight,
)
from rsdistill.losses.method import Method, register_method
from rsdistill.losses.supervised import hard_term

# The paper's settings for its CIFAR-100 pairs (Sec. 4 and its mdistiller configs):
# alpha (TCKD) 1, beta (NCKD) 8, T 4, warm-up 20 epochs.
DEFAULT_DKD_ALPHA = 1.0
DEFAULT_DKD_BETA = 8.0
DEFAULT_WARMUP_EPOCHS = 20


def _binary_log_probs(log_p: torch.Tensor, labels: torch.Tensor,
                      target: torch.Tensor) -> torch.Tensor:
    """``(N, 2)``: log p[target] and log(1 - p[target]).

    The second is a logsumexp over the non-target log-probabilities instead of
    ``log(1 - p)``: when a model is sure of the target, ``1 - p`` rounds to 0 in float32
    and its log to -inf, while the logsumexp stays finite.
    """
    log_target = log_p.gather(1, labels[:, None])
    log_rest = log_p.masked_fill(target, float("-inf")).logsumexp(dim=1, keepdim=True)
    return torch.cat([log_target, log_rest], dim=1)


def dkd_parts(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
              temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(TCKD, NCKD)``, each ``T^2 * KL(teacher || student)`` averaged over the batch.

    In float32 for the reason given in :func:`~rsdistill.losses.kd.kd_soft_loss`.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student and teacher logits differ in shape: "
                         f"{tuple(student_logits.shape)} vs {tuple(teacher_logits.shape)}")
    n, classes = student_logits.shape
    if classes < 2:
        raise ValueError("DKD needs at least two classes")
    t = float(temperature)
    z_s = student_logits.float() / t
    # The teacher is a target: no gradient may reach it even if the caller forgot no_grad.
    z_t = teacher_logits.detach().float() / t
    target = F.one_hot(labels, classes).bool()

    tckd = F.kl_div(_binary_log_probs(F.log_softmax(z_s, dim=1), labels, target),
                    _binary_log_probs(F.log_softmax(z_t, dim=1), labels, target),
                    log_target=True, reduction="batchmean")
    # The non-target classes, renormalised among themselves: dropping the target column
    # (rather than masking it with a large negative logit) leaves no 0 * log 0 term.
    rest = ~target
    log_q_s = F.log_softmax(z_s[rest].view(n, classes - 1), dim=1)
    log_q_t = F.log_softmax(z_t[rest].view(n, classes - 1), dim=1)
    nckd = F.kl_div(log_q_s, log_q_t, log_target=True, reduction="batchmean")
    return tckd * (t * t), nckd * (t * t)


def warmup_factor(epoch: int, warmup_epochs: int) -> float:
    """``min(1, (epoch + 1) / warmup_epochs)`` for the 0-based ``epoch`` being trained.

    The first epoch (0) already gets ``1 / warmup_epochs``, as in the paper's code, whose
    epochs count from 1; from epoch ``warmup_epochs - 1`` on the term has full weight.
    """
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, (int(epoch) + 1) / warmup_epochs)


class DKDLoss(DistillationLoss):
    """TCKD + beta * NCKD on the logits; reads the epoch for its warm-up."""

    soft_labels = False  # the target/non-target split needs one true class per image
    term_roles = {"dkd": SOFT, "hard": HARD}

    def __init__(self, temperature: float, label_smoothing: float = 0.0,
                 dkd_alpha: float = DEFAULT_DKD_ALPHA, dkd_beta: float = DEFAULT_DKD_BETA,
                 warmup_epochs: int = DEFAULT_WARMUP_EPOCHS) -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)
        self.label_smoothing = check_label_smoothing(label_smoothing)
        self.dkd_alpha = check_weight("dkd_alpha", dkd_alpha)
        self.dkd_beta = check_weight("dkd_beta", dkd_beta)
        self.warmup_epochs = check_epochs("warmup_epochs", warmup_epochs)

    def terms(self, inputs: StepInputs) -> dict[str, Callable[[], torch.Tensor]]:
        def decoupled() -> torch.Tensor:
            if inputs.teacher_logits is None or inputs.labels is None:
                raise ValueError("DKDLoss's dkd term needs teacher logits and labels")
            tckd, nckd = dkd_parts(inputs.student_logits, inputs.teacher_logits, inputs.labels,
                                   self.temperature)
            ramp = warmup_factor(inputs.epoch, self.warmup_epochs)
            return ramp * (self.dkd_alpha * tckd + self.dkd_beta * nckd)

        return {"dkd": decoupled, "hard": hard_term("dkd", inputs.student_logits, inputs.labels,
                                                    self.label_smoothing)}

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, "
                f"dkd_alpha={self.dkd_alpha}, dkd_beta={self.dkd_beta}, "
                f"warmup_epochs={self.warmup_epochs}, label_smoothing={self.label_smoothing}")


register_method(Method("dkd", "Zhao et al., CVPR 2022: ramp(epoch)·(dkd_alpha·TCKD + "
                              "dkd_beta·NCKD) at --temperature", factory=DKDLoss))
