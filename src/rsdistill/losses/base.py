"""The contract between a distillation loss and the trainer.

A loss returns its terms by name, unweighted, and declares each term's role in the
one weighting every method shares, ``alpha * soft + (1 - alpha) * hard``; the
distiller applies it once (:func:`weighted_terms`), sums the terms for the backward
pass and still logs every term on its own (a run where ``soft`` stays flat while
``hard`` falls says something different from one where both fall).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
import torch.nn as nn

from rsdistill.errors import ConfigError

# A term's role in the blend: SOFT terms (the method's own, the only ones that read a
# teacher or tapped features) are weighted by alpha, HARD terms (the labels'
# cross-entropy) by 1 - alpha; a term whose role is None is added as it is.
SOFT = "soft"
HARD = "hard"


@dataclass
class StepInputs:
    """Everything a loss may read in one training step, passed as one object.

    ``labels`` are class indices, or label distributions (N×K rows summing to 1) under
    Mixup/CutMix; ``student_features[i]`` pairs with ``teacher_features[i]``;
    ``peer_logits`` holds every peer's logits in mutual learning (peer 0 = the student);
    ``epoch`` is 0-based, for losses with a schedule. A loss reads what it needs and
    ignores the rest, so adding a field never changes a loss's signature.
    """

    student_logits: torch.Tensor
    labels: torch.Tensor | None = None
    teacher_logits: torch.Tensor | None = None
    student_features: list[torch.Tensor] | None = None
    teacher_features: list[torch.Tensor] | None = None
    peer_logits: list[torch.Tensor] | None = None
    epoch: int = 0


class DistillationLoss(nn.Module):
    """Base class of every per-step loss a method builds (see ``losses/method.py``).

    Subclasses implement :meth:`terms`, which takes one :class:`StepInputs` and returns
    each named term as a function computing it, unweighted; ``term_roles`` gives every
    name's role (:data:`SOFT`, :data:`HARD` or ``None``). The distiller calls only the
    functions whose weight is above 0 (:func:`weighted_terms`), so at ``alpha = 0`` the
    soft terms are not computed and at ``alpha = 1`` the labels are not read;
    :meth:`forward` computes every term, unweighted. ``needs_teacher``: the soft terms
    read the teacher's logits, so the trainer runs the teacher when ``alpha > 0``; a
    loss that never reads one sets it to ``False`` and accepts ``teacher_logits=None``.
    ``own_alpha``: a method that fixes its own blend (fm: ``1 - hard_weight``) sets it,
    and the run's ``alpha`` is then not read. A loss's constructor draws no random
    numbers (:meth:`setup` may, under the member's seed), so it may be built before the
    member is seeded.

    A method that compares intermediate feature maps sets ``uses_features``. The
    distiller then taps the chosen layers of both models with forward hooks, calls
    :meth:`setup` once before training, and passes the maps of every step as lists,
    ``student_features[i]`` paired with ``teacher_features[i]``. Weighting is the same
    for every method: ``alpha * L_method + (1 - alpha) * L_hard``, applied by the
    distiller, and the features are tapped only when ``alpha > 0``.

    ``soft_labels``: the loss reads the labels only through the cross-entropy, so it
    also takes label distributions (from Mixup/CutMix). A loss that indexes by the true
    class sets it to ``False`` and mixing is refused for it.
    """

    needs_teacher: bool = True
    soft_labels: bool = True
    uses_features: bool = False
    term_roles: Mapping[str, str | None] = {}
    own_alpha: float | None = None

    def role(self, name: str) -> str | None:
        """The blend role of term ``name``; every term a loss returns must be declared."""
        if name not in self.term_roles:
            raise ValueError(f"{type(self).__name__} returned a term {name!r} it does not "
                             "declare in term_roles")
        return self.term_roles[name]

    def default_layers(self, stages: tuple[str, ...]) -> tuple[str, ...]:
        """Which of a model's declared ``stages`` to tap when the user names none.

        All of them by default; a method that reads one stage picks it here, so the
        choice is the method's and not the trainer's.
        """
        return stages

    def setup(self, student: nn.Module, teacher: nn.Module | None,
              student_layers: tuple[str, ...], teacher_layers: tuple[str, ...],
              example_input: torch.Tensor, teacher_input: torch.Tensor | None = None) -> None:
        """Called once, before the optimiser is built, with the layers that will be tapped.

        A method checks the layer choice here (a :class:`ConfigError` stops the run before
        any step) and creates the parameters that depend on the feature shapes, e.g. a
        regressor sized by one dry forward pass of ``example_input`` (``teacher_input``
        for the teacher when it reads another resolution). Parameters created here are
        submodules of the loss, so the distiller's ``trainable_parameters`` and
        ``state_dict`` include them.
        """

    def terms(self, inputs: StepInputs) -> dict[str, Callable[[], torch.Tensor]]:
        raise NotImplementedError

    def forward(self, inputs: StepInputs) -> dict[str, torch.Tensor]:
        """Every term of one step, unweighted."""
        return {name: compute() for name, compute in self.terms(inputs).items()}


def blend_alpha(loss: object, alpha: float | None) -> float | None:
    """The alpha ``loss``'s terms are blended with: its own, or else the run's."""
    own = getattr(loss, "own_alpha", None)
    return alpha if own is None else own


def reads_teacher(loss: object, alpha: float | None) -> bool:
    """Whether ``loss`` at ``alpha`` reads a teacher: only its soft terms do."""
    a = blend_alpha(loss, alpha)
    return bool(getattr(loss, "needs_teacher", False)) and a is not None and a > 0.0


def term_weight(role: str | None, alpha: float | None, loss: object) -> float | None:
    """The weight of a term with ``role`` (``None`` = added as it is)."""
    if role is None:
        return None
    if alpha is None:
        raise ValueError(f"{type(loss).__name__} blends its terms by alpha; none was given")
    return alpha if role == SOFT else 1.0 - alpha


def weighted_terms(loss: DistillationLoss, inputs: StepInputs,
                   alpha: float | None) -> dict[str, torch.Tensor]:
    """``loss``'s terms of one step, each times its weight: the blend of every method.

    A term whose weight is 0 is a float32 zero and is not computed, so it cannot turn the
    total into nan (``0 * nan``) and costs nothing.
    """
    alpha = blend_alpha(loss, alpha)
    out = {}
    for name, compute in loss.terms(inputs).items():
        weight = term_weight(loss.role(name), alpha, loss)
        if weight is None:
            out[name] = compute()
        elif weight > 0.0:
            out[name] = weight * compute()
        else:
            out[name] = zero_term(inputs.student_logits)
    return out


def total_loss(terms: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Sum of the (weighted) loss terms, the tensor to call ``backward`` on."""
    if not terms:
        raise ValueError("total_loss needs at least one loss term")
    values = iter(terms.values())
    total = next(values)
    for value in values:
        total = total + value
    return total


def _as_float(name: str, value: object, valid: str) -> float:
    # bool is an int subclass; a YAML "yes" landing here is a typo, not a weight of 1.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a number {valid}, got {value!r}")
    return float(value)


def check_alpha(alpha: object) -> float:
    """``alpha`` as a float if ``0 <= alpha <= 1``, else :class:`ConfigError`."""
    valid = "in [0, 1] (the weight of the soft, teacher term)"
    a = _as_float("alpha", alpha, valid)
    if not 0.0 <= a <= 1.0:  # also rejects nan
        raise ConfigError(f"alpha must be {valid}, got {alpha!r}")
    return a


def check_temperature(temperature: object) -> float:
    """``temperature`` as a float if it is finite and ``> 0``, else :class:`ConfigError`."""
    valid = "finite and > 0"
    t = _as_float("temperature", temperature, valid)
    if not (math.isfinite(t) and t > 0.0):
        raise ConfigError(f"temperature must be {valid}, got {temperature!r}")
    return t


def check_beta(beta: object) -> float:
    """``beta`` as a float if it is finite and ``>= 0``, else :class:`ConfigError`."""
    valid = "finite and >= 0 (the weight of the nuclear-norm penalty)"
    b = _as_float("beta", beta, valid)
    if not (math.isfinite(b) and b >= 0.0):
        raise ConfigError(f"beta must be {valid}, got {beta!r}")
    return b


def check_label_smoothing(label_smoothing: object) -> float:
    """``label_smoothing`` as a float if ``0 <= value < 1``, else :class:`ConfigError`."""
    # At 1 the target is uniform and carries no label at all; torch accepts it silently.
    valid = "in [0, 1)"
    s = _as_float("label_smoothing", label_smoothing, valid)
    if not 0.0 <= s < 1.0:
        raise ConfigError(f"label_smoothing must be {valid}, got {label_smoothing!r}")
    return s


def zero_term(like: torch.Tensor) -> torch.Tensor:
    """A float32 scalar zero on ``like``'s device, for a term whose weight is 0.

    Returned instead of ``0 * term`` because ``0 * nan`` is nan: a term with weight 0
    must not be able to poison the total, and skipping it also skips its compute.
    """
    return torch.zeros((), dtype=torch.float32, device=like.device)


def check_weight(name: str, value: object) -> float:
    """A method's loss weight as a float if it is finite and ``>= 0``, else :class:`ConfigError`."""
    valid = "finite and >= 0"
    w = _as_float(name, value, valid)
    if not (math.isfinite(w) and w >= 0.0):
        raise ConfigError(f"{name} must be {valid}, got {value!r}")
    return w


def check_epochs(name: str, value: object) -> int:
    """A count of epochs as an int if it is ``>= 0``, else :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ConfigError(f"{name} must be a whole number of epochs >= 0, got {value!r}")
    return int(value)
