"""Self-distillation without a separately trained teacher: the method ``self``.

Two variants, chosen with ``--method-option variant=...`` from :data:`SELF_VARIANTS`:

* ``born_again`` (Furlanello et al., ICML 2018): ``generations`` models of the student's
  architecture are trained one after another; generation 0 from the labels alone,
  generation ``k + 1`` by KD (this package's ``alpha`` and ``T``) from generation ``k``'s
  best checkpoint. The ``"generations"`` procedure runs them as ordinary runs; this
  variant builds a :class:`GenerationsPlan`, not a loss.
* ``teacher_free`` (Yuan et al., CVPR 2020, "Tf-KD_reg"): a virtual teacher that puts
  probability ``a`` on the true class and spreads ``1 - a`` uniformly over the others;
  ``(1 - alpha) * CE + alpha * T^2 * KL(p_virtual || softmax(s / T))``: its terms
  ``virtual`` and ``hard`` come back unweighted and the distiller blends them by alpha.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from rsdistill.errors import ConfigError
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
from rsdistill.registry import Registry

# Born-again's smallest useful run: one teacher generation and one student generation,
# the paper's first step (its tables go further, to BAN-2..5).
DEFAULT_GENERATIONS = 2
# Yuan et al.'s a for Tf-KD_reg as stated in the paper (their released code hard-codes
# 0.99 in places); at 0.9 the virtual teacher is 90 % sure, like a well-trained one.
DEFAULT_TRUE_PROB = 0.9
DEFAULT_VARIANT = "born_again"


@dataclass(frozen=True)
class GenerationsPlan:
    """What a born-again run trains: ``generations`` runs, each KD (α, T) from the last.

    Not a loss: the ``"generations"`` procedure trains each generation as an ordinary
    run, so nothing is computed per step from this object.
    """

    alpha: float
    temperature: float
    label_smoothing: float = 0.0
    generations: int = DEFAULT_GENERATIONS
    # Generation 0 learns from the labels alone, so the run as a whole reads no teacher.
    needs_teacher = False

    def __post_init__(self) -> None:
        # alpha comes from the run's MethodConfig, which checked it when it was made.
        check_temperature(self.temperature)
        check_label_smoothing(self.label_smoothing)
        # Generation 0 alone would be training from scratch: at least one must distil.
        g = self.generations
        if isinstance(g, bool) or not isinstance(g, numbers.Integral) or g < 2:
            raise ConfigError(f"generations must be a whole number >= 2 (generation 0 is the "
                              f"first teacher), got {g!r}")


def check_true_prob(a: object) -> float:
    """``a`` as a float if ``0 < a <= 1``, else :class:`ConfigError`."""
    if isinstance(a, bool) or not isinstance(a, numbers.Real) or not 0.0 < float(a) <= 1.0:
        raise ConfigError(f"a (the virtual teacher's probability of the true class) must be "
                          f"in (0, 1], got {a!r}")
    return float(a)


def virtual_teacher(labels: torch.Tensor, num_classes: int, a: float) -> torch.Tensor:
    """Rows of ``a`` on the label and ``(1 - a) / (K - 1)`` elsewhere (float32, sum 1)."""
    if num_classes < 2:
        raise ValueError(f"a virtual teacher needs two or more classes, got {num_classes}")
    rest = (1.0 - a) / (num_classes - 1)
    dist = torch.full((labels.numel(), num_classes), rest, dtype=torch.float32,
                      device=labels.device)
    return dist.scatter_(1, labels.view(-1, 1), a)


def teacher_free_soft_loss(student_logits: torch.Tensor, labels: torch.Tensor, a: float,
                           temperature: float) -> torch.Tensor:
    """``T^2 * KL(p_virtual || softmax(s / T))``, averaged over the batch.

    Written with ``xlogy`` rather than ``F.kl_div``: at ``a = 1`` the virtual teacher has
    exact zeros, whose ``0 * log 0`` must count as 0, not nan. ``T^2`` keeps the gradient's
    size comparable across temperatures, as in :func:`~rsdistill.losses.kd.kd_soft_loss`.
    """
    t = float(temperature)
    target = virtual_teacher(labels, student_logits.shape[-1], a)
    log_p = F.log_softmax(student_logits.float() / t, dim=-1)
    kl = (torch.xlogy(target, target) - target * log_p).sum(dim=-1).mean()
    return kl * (t * t)


class TeacherFreeLoss(DistillationLoss):
    """``{"virtual": L_virtual, "hard": CE}``, blended by alpha; no teacher at all.

    The paper's code feeds ``softmax(p_virtual / T)`` to an unsoftened student; here the
    virtual distribution itself is the target and the student is softened, the same form
    as KD, so ``alpha`` and ``T`` mean what they mean for every other method. The student
    then matches the target exactly at a logit margin of ``T * ln(a (K - 1) / (1 - a))``,
    so a large ``T`` (the paper's 20) asks for large logits; the run's ``--temperature``
    (default 4, as for KD) is used.
    """

    needs_teacher = False
    soft_labels = False  # the virtual teacher is built around one true class
    term_roles = {"virtual": SOFT, "hard": HARD}

    def __init__(self, temperature: float, label_smoothing: float = 0.0,
                 a: float = DEFAULT_TRUE_PROB) -> None:
        super().__init__()
        self.temperature = check_temperature(temperature)
        self.label_smoothing = check_label_smoothing(label_smoothing)
        self.a = check_true_prob(a)

    def terms(self, inputs: StepInputs) -> dict[str, Callable[[], torch.Tensor]]:
        def virtual() -> torch.Tensor:
            if inputs.labels is None:
                raise ValueError("the teacher-free loss builds its virtual teacher from labels")
            return teacher_free_soft_loss(inputs.student_logits, inputs.labels, self.a,
                                          self.temperature)

        return {"virtual": virtual, "hard": hard_term("self", inputs.student_logits,
                                                      inputs.labels, self.label_smoothing)}

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, a={self.a}, "
                f"label_smoothing={self.label_smoothing}")


SELF_VARIANTS: Registry[Method] = Registry("self-distillation variant")
SELF_VARIANTS.add("born_again", Method(
    "born_again", "generation k+1 is kd (α, T) from generation k; generation 0 from the labels",
    factory=GenerationsPlan, procedure="generations", teacher=False))
SELF_VARIANTS.add("teacher_free", Method(
    "teacher_free", "T²·KL(p_virtual ‖ p_s), a virtual teacher with a on the true class",
    factory=TeacherFreeLoss, teacher=False))

register_method(Method("self", "self-distillation, no teacher: variant=born_again (Furlanello "
                               "et al., ICML 2018) or teacher_free (Yuan et al., CVPR 2020)",
                       teacher=False, variants=SELF_VARIANTS, default_variant=DEFAULT_VARIANT))
