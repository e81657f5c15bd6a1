"""FitNets (Romero et al., ICLR 2015): the student's middle stage regresses the teacher's.

``{"hint": hint_weight * MSE(r(s), t), "hard": L_hard}``, unweighted (the distiller
weighs ``hint`` by alpha and ``hard`` by 1 - alpha), where
``s`` and ``t`` are one stage's feature maps and ``r`` is a learned 1x1 conv + batch
norm (+ ReLU) that maps the student's channels onto the teacher's. The paper trains the
hint first and then runs KD; like the benchmarks that compare it with KD (CRD's,
mdistiller), this trains both terms jointly in one stage, so it fits the same sweep and
trainer.

The regressor ends in a ReLU when the teacher's hinted stage does (``regressor_relu=auto``
checks the stage's output on a random input): a post-ReLU target is never negative, and
RepDistiller's and mdistiller's regressors, whose hint weight of 100 is the default here,
end in one. A pre-activation stage (a WRN block, a MobileNetV2 linear bottleneck) has
negative targets a ReLU could never reach, so there it is left out.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from rsdistill.errors import ConfigError
from rsdistill.losses.base import (
    DistillationLoss,
    HARD,
    SOFT,
    StepInputs,
    check_label_smoothing,
    check_weight,
)
from rsdistill.losses.method import Method, register_method
from rsdistill.losses.spatial import resize_to
from rsdistill.losses.supervised import hard_term
from rsdistill.runtime.hooks import FeatureTap, probe_feature_maps

# The weight of the mean-squared hint in CRD's benchmark code (Tian et al., ICLR 2020,
# RepDistiller "-b 100") and in mdistiller's FitNet config (FEAT_WEIGHT 100), both with
# CE weighted 1: the MSE is averaged over every channel and position, so it is small
# next to a cross-entropy. With alpha = 0.5 the hint : CE ratio here equals theirs.
DEFAULT_HINT_WEIGHT = 100.0
RELU_CHOICES = ("auto", True, False)


@torch.no_grad()
def stage_is_nonnegative(model: nn.Module, layer: str, example_input: torch.Tensor) -> bool:
    """Whether ``layer``'s output stays >= 0 on a random input (it ends in a ReLU).

    The input comes from a private generator, so the global RNG stream (which later
    initialisations draw from) is not moved; eval mode keeps batch-norm statistics.
    """
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(example_input.shape, generator=gen).to(example_input.device)
    was_training = model.training
    model.eval()
    try:
        with FeatureTap(model, (layer,), "teacher") as tap:
            model(x)
            (out,) = tap.take()
    finally:
        model.train(was_training)
    return bool((out >= 0).all())


class FitNetLoss(DistillationLoss):
    """One hinted stage; ``setup`` builds the regressor from the real feature shapes."""

    uses_features = True
    term_roles = {"hint": SOFT, "hard": HARD}

    def __init__(self, label_smoothing: float = 0.0,
                 hint_weight: float = DEFAULT_HINT_WEIGHT,
                 regressor_relu: str | bool = "auto") -> None:
        super().__init__()
        self.label_smoothing = check_label_smoothing(label_smoothing)
        self.hint_weight = check_weight("hint_weight", hint_weight)
        if regressor_relu not in RELU_CHOICES or isinstance(regressor_relu, int) and \
                not isinstance(regressor_relu, bool):
            raise ConfigError(f"regressor_relu must be auto, true or false, got {regressor_relu!r}")
        self.regressor_relu = regressor_relu
        # Built by setup(), which the distiller calls only when alpha > 0: an alpha = 0 run
        # has no teacher, hooks or regressor, so its RNG use matches a "none" run exactly.
        self.regressor: nn.Module | None = None

    def default_layers(self, stages: tuple[str, ...]) -> tuple[str, ...]:
        # The paper's choice: the middle layer of each network. A deeper guided layer
        # leaves the student less freedom (the paper calls it over-regularisation),
        # and the middle stages of two models sit at comparable depth.
        return (stages[len(stages) // 2],)

    def setup(self, student: nn.Module, teacher: nn.Module | None,
              student_layers: tuple[str, ...], teacher_layers: tuple[str, ...],
              example_input: torch.Tensor, teacher_input: torch.Tensor | None = None) -> None:
        if len(student_layers) != 1 or len(teacher_layers) != 1:
            raise ConfigError(
                "fitnet hints exactly one stage; pass one name each to --student-layers and "
                f"--teacher-layers (got {len(student_layers)} and {len(teacher_layers)})")
        if teacher is None:
            raise ConfigError("fitnet needs a teacher")
        (s_shape,) = probe_feature_maps(student, student_layers, example_input, "student")
        (t_shape,) = probe_feature_maps(teacher, teacher_layers,
                                      example_input if teacher_input is None else teacher_input,
                                      "teacher")
        relu = self.regressor_relu
        if relu == "auto":
            relu = stage_is_nonnegative(teacher, teacher_layers[0],
                                        example_input if teacher_input is None else teacher_input)
        # No bias: the batch norm right after it has its own shift.
        layers = [nn.Conv2d(s_shape[1], t_shape[1], kernel_size=1, bias=False),
                  nn.BatchNorm2d(t_shape[1])]
        if relu:
            layers.append(nn.ReLU())
        self.regressor = nn.Sequential(*layers)
        # On the student's device, so a distiller built there needs no extra .to().
        self.regressor.to(next(student.parameters()).device)

    def hint_loss(self, student_map: torch.Tensor, teacher_map: torch.Tensor) -> torch.Tensor:
        """``MSE(r(resize(s)), t)`` in float32, averaged over batch, channels and positions."""
        if self.regressor is None:
            raise RuntimeError("FitNetLoss.setup() was not called: the regressor does not exist")
        # The student map is brought to the teacher's grid first, so the regressor's batch
        # norm normalises the same positions the MSE compares.
        student_map = resize_to(student_map, teacher_map.shape[-2:])
        # The teacher is a target: no gradient may reach it even without no_grad.
        return F.mse_loss(self.regressor(student_map).float(), teacher_map.detach().float())

    def terms(self, inputs: StepInputs) -> dict[str, Callable[[], torch.Tensor]]:
        def hint() -> torch.Tensor:
            if not inputs.student_features or not inputs.teacher_features:
                raise ValueError("FitNetLoss needs student_features and teacher_features")
            return self.hint_weight * self.hint_loss(inputs.student_features[0],
                                                     inputs.teacher_features[0])

        return {"hint": hint, "hard": hard_term("fitnet", inputs.student_logits, inputs.labels,
                                                self.label_smoothing)}

    def extra_repr(self) -> str:
        return (f"hint_weight={self.hint_weight}, "
                f"regressor_relu={self.regressor_relu}, label_smoothing={self.label_smoothing}")


register_method(Method("fitnet", "Romero et al., ICLR 2015: hint_weight·MSE(r(s), t) on one "
                                 "stage, r = learned 1×1 conv + BN (+ ReLU)", factory=FitNetLoss))
