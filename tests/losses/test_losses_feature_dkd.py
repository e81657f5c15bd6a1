"""Decoupled KD: closed forms of TCKD and NCKD, the KD identity, warm-up and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from rsdistill.training.distiller import Distiller
from rsdistill.errors import ConfigError
from rsdistill.losses import (
    DKDLoss,
    build_method,
    dkd_parts,
    kd_soft_loss,
    reads_teacher,
    warmup_factor,
    weighted_terms,
)
from rsdistill.models import build_model
from rsdistill.training.distiller import TrainStep
from rsdistill.losses import StepInputs


def _logits(seed, n=6, classes=5, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, classes, generator=g)


def test_both_parts_vanish_when_the_logits_coincide():
    s = _logits(0)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    tckd, nckd = dkd_parts(s, s.clone(), labels, 4.0)
    assert abs(tckd.item()) < 1e-6 and abs(nckd.item()) < 1e-6


def test_tckd_is_zero_when_both_give_the_target_the_same_probability():
    # Same target logit and the same log-sum-exp over the rest, other non-target shape:
    # p_target is equal, so only NCKD sees a difference.
    s = torch.tensor([[2.0, math.log(2.0), math.log(2.0)]])    # rest: exp = 2 + 2
    t = torch.tensor([[2.0, math.log(1.0), math.log(3.0)]])    # rest: exp = 1 + 3
    tckd, nckd = dkd_parts(s, t, torch.tensor([0]), 1.0)
    assert abs(tckd.item()) < 1e-6
    # NCKD = KL((1/4, 3/4) || (1/2, 1/2)) = 1/4 ln(1/2) + 3/4 ln(3/2).
    assert nckd.item() == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5), rel=1e-5)


def test_nckd_is_zero_when_the_non_target_classes_agree():
    # Non-target logits differ by a constant only: same renormalised distribution.
    s = torch.tensor([[0.0, 1.0, 2.0]])
    t = torch.tensor([[3.0, 1.5, 2.5]])
    tckd, nckd = dkd_parts(s, t, torch.tensor([0]), 1.0)
    assert abs(nckd.item()) < 1e-6
    ps = torch.softmax(s, 1)[0, 0].item()
    pt = torch.softmax(t, 1)[0, 0].item()
    binary_kl = pt * math.log(pt / ps) + (1 - pt) * math.log((1 - pt) / (1 - ps))
    assert tckd.item() == pytest.approx(binary_kl, rel=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_kd_is_tckd_plus_damped_nckd(temperature):
    # The paper's Eq. 7, per sample: KD = TCKD + (1 - p_t[target]) * NCKD (all times T^2).
    for i in range(4):
        s, t = _logits(10 + i, n=1), _logits(20 + i, n=1)
        label = torch.tensor([i])
        tckd, nckd = dkd_parts(s, t, label, temperature)
        p_target = torch.softmax(t / temperature, 1)[0, i].item()
        kd = kd_soft_loss(s, t, temperature).item()
        assert kd == pytest.approx(tckd.item() + (1 - p_target) * nckd.item(), rel=1e-4)


def test_stays_finite_for_a_certain_teacher():
    s, t = torch.zeros(2, 4), torch.tensor([[200.0, 0, 0, 0], [0, 300.0, 0, 0]])
    s.requires_grad_(True)
    tckd, nckd = dkd_parts(s, t, torch.tensor([0, 1]), 1.0)
    (tckd + nckd).backward()
    assert torch.isfinite(tckd) and torch.isfinite(nckd) and torch.isfinite(s.grad).all()


def test_warmup_ramps_linearly_by_epoch():
    assert warmup_factor(0, 20) == pytest.approx(1 / 20)
    assert warmup_factor(9, 20) == pytest.approx(0.5)
    assert warmup_factor(19, 20) == 1.0 and warmup_factor(50, 20) == 1.0
    assert warmup_factor(0, 0) == 1.0
    loss = DKDLoss(temperature=4.0, warmup_epochs=20)
    s, t, y = _logits(1), _logits(2), torch.tensor([0, 1, 2, 3, 4, 0])
    first = loss(StepInputs(s, y, t, epoch=0))
    late = loss(StepInputs(s, y, t, epoch=25))
    assert first["dkd"].item() == pytest.approx(late["dkd"].item() / 20, rel=1e-6)
    assert first["hard"].item() == late["hard"].item()


def test_weighting_and_defaults():
    loss = build_method("dkd", alpha=0.3, temperature=2.0)
    assert (loss.dkd_alpha, loss.dkd_beta, loss.warmup_epochs) == (1.0, 8.0, 20)
    loss = build_method("dkd", alpha=0.3, temperature=2.0,
                             options={"dkd_alpha": 0.5, "dkd_beta": 3, "warmup_epochs": 0})
    s, t, y = _logits(3), _logits(4), torch.tensor([4, 3, 2, 1, 0, 1])
    tckd, nckd = dkd_parts(s, t, y, 2.0)
    terms = weighted_terms(loss, StepInputs(s, y, t), 0.3)
    assert terms["dkd"].item() == pytest.approx(0.3 * (0.5 * tckd + 3 * nckd).item(), rel=1e-6)
    zero = DKDLoss(temperature=4.0)
    assert not reads_teacher(zero, 0.0)
    assert weighted_terms(zero, StepInputs(s, y), 0.0)["dkd"].item() == 0.0


def test_gradient_reaches_the_student_only():
    s = _logits(5).requires_grad_(True)
    t = _logits(6).requires_grad_(True)
    DKDLoss(temperature=4.0, warmup_epochs=0)(StepInputs(s, torch.tensor([0] * 6), t))["dkd"] \
        .backward()
    assert s.grad.abs().sum() > 0 and t.grad is None


def test_distiller_passes_the_epoch_through():
    torch.manual_seed(0)
    student, teacher = build_model("resnet8", 3, 16), build_model("resnet8", 3, 16)
    d = Distiller(student, DKDLoss(temperature=4.0, warmup_epochs=4), teacher, alpha=1.0)
    d.eval()
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        early = d.forward_train(TrainStep(x, y, epoch=0))[1]["dkd"].item()
        late = d.forward_train(TrainStep(x, y, epoch=3))[1]["dkd"].item()
    assert early > 0 and early == pytest.approx(late / 4, rel=1e-5)


@pytest.mark.parametrize("options, name", [
    ({"dkd_beta": -1.0}, "dkd_beta"),
    ({"dkd_alpha": float("inf")}, "dkd_alpha"),
    ({"warmup_epochs": 2.5}, "warmup_epochs"),
    ({"warmup_epochs": -1}, "warmup_epochs"),
])
def test_options_are_validated(options, name):
    with pytest.raises(ConfigError, match=name):
        build_method("dkd", alpha=0.5, temperature=4.0, options=options)
