"""The student, an optional frozen teacher, and the named loss terms that train it.

Like mdistiller's ``Distiller``: ``forward_train`` returns the student's logits and a
dict of named loss terms; the training loop only sums them. The loss returns its terms
unweighted and the distiller applies the one blend of every method here, once:
``alpha * soft + (1 - alpha) * hard`` (:func:`~rsdistill.losses.base.weighted_terms`).
A new method is a new loss class, never a change to the loop. :class:`Trainable` is what the
loop needs from any distiller (this one, or dml's peers in ``experiments/mutual.py``).

For a feature-based loss (``loss.uses_features``) the distiller taps the chosen layers
of both models with forward hooks (:class:`~rsdistill.runtime.hooks.FeatureTap`), so the
models themselves are never rewritten; :meth:`close` removes the hooks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator, Protocol, Sequence

import torch
from torch import nn

from rsdistill.data.loader import Normalizer
from rsdistill.data.views import view_key
from rsdistill.errors import ConfigError
from rsdistill.losses import (
    DistillationLoss,
    NuclearNormPenalty,
    StepInputs,
    blend_alpha,
    effective_rank,
    nuclear_norm,
    reads_teacher,
    weighted_terms,
)
from rsdistill.models import first_weight_layer
from rsdistill.runtime.hooks import FeatureTap, default_feature_layers

log = logging.getLogger(__name__)


def example_input(image_size: int, in_chans: int = 3) -> torch.Tensor:
    """A one-image batch for the losses' dry run: only its shape matters.

    Zeros, not random numbers, so building a distiller draws nothing from the global
    RNG beyond what its modules' initialisation does (a fused sweep member must start
    exactly like the single run with the same seed).
    """
    return torch.zeros(1, in_chans, image_size, image_size)


@dataclass(frozen=True)
class TeacherView:
    """What a teacher reads when it is not the student's own view: its input size, the
    size the scene was reduced to first (``None``: decoded at the teacher's size), and
    the teacher's normalisation."""

    image_size: int
    normalizer: Normalizer
    source_size: int | None = None

    @property
    def key(self) -> tuple[int, int | None]:
        return view_key(self.image_size, self.source_size)

    @classmethod
    def for_teacher(cls, teacher_meta: dict, student_size: int, mode: str = "own",
                    student_source: int | None = None) -> "TeacherView":
        """The view a teacher reads, with its own normalisation (a pretrained teacher
        expects its weights' statistics even when it reads the student's images).

        ``mode`` "own": the scene at the teacher's resolution, as the teacher was trained
        (reduced first if its run was, ``source_size`` in its meta); "upsampled": the
        student's own view upsampled to the teacher's input size.
        """
        size = int(teacher_meta["image_size"])
        source = teacher_meta.get("source_size") if mode == "own" else \
            (student_source or student_size)
        if size == int(student_size) and mode == "upsampled":
            source = student_source
        key = view_key(size, source)
        return cls(key[0], Normalizer.from_dict(teacher_meta.get("normalization")), key[1])


@dataclass
class TrainStep:
    """One training step's inputs, as the loop hands them to a distiller.

    ``targets`` are the class indices, or label distributions under Mixup/CutMix.
    ``teacher_logits`` (and ``teacher_features``) are given when the loop ran a shared
    teacher once for several students; otherwise the distiller runs its teacher on
    ``teacher_images`` (its own view) or on ``images``.
    """

    images: torch.Tensor
    targets: torch.Tensor
    teacher_images: torch.Tensor | None = None
    teacher_logits: torch.Tensor | None = None
    teacher_features: list[torch.Tensor] | None = None
    epoch: int = 0


class Trainable(Protocol):
    """What the training loop needs from a distiller (an ``nn.Module``)."""

    student: nn.Module
    teacher: nn.Module | None
    teacher_view: "TeacherView | None"
    teacher_layers: tuple[str, ...] | None

    @property
    def needs_teacher(self) -> bool:
        """Whether a step reads the (frozen) teacher's outputs."""

    @property
    def uses_features(self) -> bool:
        """Whether a step reads the teacher's tapped feature maps."""

    @property
    def soft_labels(self) -> bool:
        """Whether the loss takes label distributions (Mixup/CutMix)."""

    @property
    def method_name(self) -> str:
        """The loss's name, for messages."""

    def forward_train(self, step: TrainStep) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def teacher_outputs(self, images: torch.Tensor
                        ) -> tuple[torch.Tensor, list[torch.Tensor] | None]: ...

    def trainable_parameters(self) -> list[nn.Parameter]: ...

    def peer_models(self) -> list[tuple[nn.Module, str]]: ...

    def first_layer_stats(self) -> dict[str, float]: ...

    def close(self) -> None: ...

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]: ...


class Distiller(nn.Module):
    """A student, its loss and an optional frozen teacher.

    ``alpha`` blends the loss's soft and hard terms (ignored for a loss with its own
    ``own_alpha``; may be ``None`` for a loss whose terms are not blended, e.g. ``none``).
    At ``alpha = 0`` the teacher is not run and no feature is tapped.
    """

    def __init__(self, student: nn.Module, loss: DistillationLoss,
                 teacher: nn.Module | None = None, nuclear_beta: float = 0.0, *,
                 alpha: float | None = None,
                 student_layers: Sequence[str] | None = None,
                 teacher_layers: Sequence[str] | None = None,
                 example_input: torch.Tensor | None = None,
                 teacher_view: "TeacherView | None" = None) -> None:
        super().__init__()
        self.student = student
        self.loss = loss
        self.alpha = blend_alpha(loss, alpha)
        self.teacher = teacher
        # Set when the teacher reads its own resolution (cross-resolution distillation).
        self.teacher_view = teacher_view
        if teacher is not None:
            teacher.eval()
            for p in teacher.parameters():
                p.requires_grad_(False)
        self.nuclear = NuclearNormPenalty(nuclear_beta) if nuclear_beta > 0 else None
        self.first_layer_name, self.first_layer = first_weight_layer(student)
        self.student_tap: FeatureTap | None = None
        self.teacher_tap: FeatureTap | None = None
        self.student_layers: tuple[str, ...] | None = None
        self.teacher_layers: tuple[str, ...] | None = None
        if loss.uses_features and reads_teacher(loss, self.alpha):
            self._tap_features(student_layers, teacher_layers, example_input)

    def _tap_features(self, student_layers: Sequence[str] | None,
                      teacher_layers: Sequence[str] | None,
                      example: torch.Tensor | None) -> None:
        if self.teacher is None:
            raise ConfigError(f"{type(self.loss).__name__} compares features with a teacher's; "
                              "pass --teacher")
        if example is None:
            raise ValueError("a feature-based loss needs example_input for its dry run")
        # Named layers win; otherwise the method picks among the model's declared stages.
        s_layers = tuple(student_layers) if student_layers else \
            self.loss.default_layers(default_feature_layers(self.student, "--student-layers"))
        t_layers = tuple(teacher_layers) if teacher_layers else \
            self.loss.default_layers(default_feature_layers(self.teacher, "--teacher-layers"))
        # The taps are created first: they reject unknown names with the list of valid
        # ones, before setup() tries a forward pass with them.
        self.student_tap = FeatureTap(self.student, s_layers, "student")
        try:
            self.teacher_tap = FeatureTap(self.teacher, t_layers, "teacher")
            teacher_example = None
            if self.teacher_view is not None:
                teacher_example = torch.zeros(*example.shape[:2], self.teacher_view.image_size,
                                              self.teacher_view.image_size)
            self.loss.setup(self.student, self.teacher, s_layers, t_layers, example,
                            teacher_input=teacher_example)
        except BaseException:
            self.close()  # a failed setup leaves no hook on a model the caller still holds
            raise
        self.student_layers, self.teacher_layers = s_layers, t_layers
        log.debug("%s taps student %s and teacher %s", type(self.loss).__name__,
                  ", ".join(s_layers), ", ".join(t_layers))

    @property
    def uses_features(self) -> bool:
        return self.student_tap is not None

    @property
    def needs_teacher(self) -> bool:
        return self.teacher is not None and reads_teacher(self.loss, self.alpha)

    @property
    def soft_labels(self) -> bool:
        return self.loss.soft_labels

    @property
    def method_name(self) -> str:
        return type(self.loss).__name__

    def peer_models(self) -> list[tuple[nn.Module, str]]:
        """Models trained beside the student and saved with it: none here."""
        return []

    def close(self) -> None:
        """Remove every forward hook this distiller registered (idempotent)."""
        for tap in (self.student_tap, self.teacher_tap):
            if tap is not None:
                tap.remove()

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

    @torch.no_grad()
    def teacher_outputs(self, images: torch.Tensor
                        ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """The teacher's logits and, for a feature loss, its tapped feature maps."""
        if self.teacher is None:
            raise ValueError("this distiller has no teacher")
        logits = self.teacher(images)
        features = self.teacher_tap.take() if self.teacher_tap is not None else None
        return logits, features

    def forward_train(self, step: TrainStep) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The student's logits and the named loss terms of one step."""
        logits = self.student(step.images)
        student_features = self.student_tap.take() if self.student_tap is not None else None
        teacher_logits, teacher_features = step.teacher_logits, step.teacher_features
        if teacher_logits is None and self.needs_teacher:
            teacher_logits, features = self.teacher_outputs(
                step.images if step.teacher_images is None else step.teacher_images)
            teacher_features = features if teacher_features is None else teacher_features
        elif self.teacher_tap is not None:
            # A shared teacher ran through another member's distiller; this one's hooks
            # saw the same pass and would otherwise keep its activations alive.
            self.teacher_tap.clear()
        if student_features is not None and teacher_features is None:
            raise ValueError(f"{self.method_name} needs teacher_features together "
                             "with teacher_logits")
        terms = weighted_terms(self.loss, StepInputs(logits, step.targets, teacher_logits,
                                                     student_features, teacher_features,
                                                     epoch=step.epoch), self.alpha)
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
