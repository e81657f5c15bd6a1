"""The one blend: every registered method's total loss, as the distiller weighs its
unweighted terms, equals the method's formula at several alphas."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from rsdistill.losses import (
    METHODS,
    GenerationsPlan,
    MethodConfig,
    StepInputs,
    at_pair_loss,
    dkd_parts,
    kd_soft_loss,
    teacher_free_soft_loss,
    total_loss,
    warmup_factor,
    weighted_terms,
)
from rsdistill.losses.spatial import resize_to
from rsdistill.models import build_model
from rsdistill.training.distiller import Distiller, TrainStep

ALPHAS = (0.0, 0.3, 1.0)
EPOCH = 4  # inside dkd's warm-up, so its ramp is part of the formula


def _inputs() -> StepInputs:
    g = torch.Generator().manual_seed(7)
    s, t = torch.randn(6, 5, generator=g) * 3, torch.randn(6, 5, generator=g) * 3
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    s_maps = [torch.randn(6, 4, 8, 8, generator=g), torch.randn(6, 8, 4, 4, generator=g)]
    t_maps = [torch.randn(6, 4, 4, 4, generator=g), torch.randn(6, 8, 4, 4, generator=g)]
    return StepInputs(s, labels, t, s_maps, t_maps, peer_logits=[s, t], epoch=EPOCH)


def _mix(alpha: float, soft: torch.Tensor, hard: torch.Tensor) -> torch.Tensor:
    return alpha * soft + (1 - alpha) * hard


def _dml(x: StepInputs, a: float) -> torch.Tensor:
    total = 0
    for i, z in enumerate(x.peer_logits):
        other = x.peer_logits[1 - i]
        total = total + _mix(a, kd_soft_loss(z, other, 1.0), F.cross_entropy(z, x.labels))
    return total


def _dkd(x: StepInputs, a: float) -> torch.Tensor:
    tckd, nckd = dkd_parts(x.student_logits, x.teacher_logits, x.labels, 4.0)
    ramp = warmup_factor(EPOCH, 20)
    return _mix(a, ramp * (1.0 * tckd + 8.0 * nckd), F.cross_entropy(x.student_logits, x.labels))


def _fitnet(x: StepInputs, a: float) -> torch.Tensor:
    s_map = resize_to(x.student_features[0], x.teacher_features[0].shape[-2:])
    hint = 100.0 * F.mse_loss(s_map, x.teacher_features[0])
    return _mix(a, hint, F.cross_entropy(x.student_logits, x.labels))


def _at(x: StepInputs, a: float) -> torch.Tensor:
    pairs = sum(at_pair_loss(s, t) for s, t in zip(x.student_features, x.teacher_features))
    return _mix(a, 500.0 * pairs, F.cross_entropy(x.student_logits, x.labels))


# Every registered method's formula at the run's alpha (options as given beside it).
FORMULAS = {
    "none": ({}, lambda x, a: F.cross_entropy(x.student_logits, x.labels)),
    "kd": ({}, lambda x, a: _mix(a, kd_soft_loss(x.student_logits, x.teacher_logits, 4.0),
                                 F.cross_entropy(x.student_logits, x.labels))),
    # fm fixes its own blend: --alpha is not read.
    "fm": ({"hard_weight": 0.25},
           lambda x, a: _mix(0.75, kd_soft_loss(x.student_logits, x.teacher_logits, 1.0),
                             F.cross_entropy(x.student_logits, x.labels))),
    "dkd": ({}, _dkd),
    "fitnet": ({}, _fitnet),
    "at": ({}, _at),
    "dml": ({}, _dml),
    "self": ({"variant": "teacher_free"},
             lambda x, a: _mix(a, teacher_free_soft_loss(x.student_logits, x.labels, 0.9, 4.0),
                               F.cross_entropy(x.student_logits, x.labels))),
}


def test_every_registered_method_has_a_formula_here():
    assert set(METHODS.names()) == set(FORMULAS)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_total_is_the_formula(name, alpha):
    options, formula = FORMULAS[name]
    cfg = MethodConfig(method=name, alpha=alpha, method_options=dict(options))
    loss = cfg.build()
    if name == "fitnet":
        loss.regressor = nn.Identity()  # what setup() builds is tested in its own file
    x = _inputs()
    total = total_loss(weighted_terms(loss, x, cfg.alpha))
    torch.testing.assert_close(total, formula(x, alpha), rtol=1e-6, atol=1e-7)


def test_unweighted_terms_come_back_from_the_loss_itself():
    x = _inputs()
    terms = MethodConfig(method="kd", alpha=0.3).build()(x)
    torch.testing.assert_close(terms["soft"], kd_soft_loss(x.student_logits, x.teacher_logits, 4.0))
    torch.testing.assert_close(terms["hard"], F.cross_entropy(x.student_logits, x.labels))


def test_born_again_is_a_plan_not_a_blended_loss():
    plan = MethodConfig(method="self", alpha=0.3).build()
    assert isinstance(plan, GenerationsPlan) and plan.alpha == 0.3


@pytest.mark.parametrize("alpha", ALPHAS)
def test_the_distiller_applies_the_blend_once(alpha):
    torch.manual_seed(0)
    student, teacher = build_model("resnet8", 3, 16), build_model("resnet8", 3, 16)
    cfg = MethodConfig(method="kd", alpha=alpha)
    d = Distiller(student, cfg.build(), teacher, alpha=cfg.alpha).eval()
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        logits, terms = d.forward_train(TrainStep(x, y))
        expected = _mix(alpha, kd_soft_loss(logits, teacher(x), 4.0), F.cross_entropy(logits, y))
    torch.testing.assert_close(total_loss(terms), expected, rtol=1e-6, atol=1e-7)
    assert d.needs_teacher is (alpha > 0)


def test_an_undeclared_term_is_refused():
    loss = MethodConfig(method="kd").build()
    loss.terms = lambda inputs: {"extra": lambda: torch.zeros(())}
    with pytest.raises(ValueError, match="term_roles"):
        weighted_terms(loss, _inputs(), 0.5)
