import math

import pytest
import torch
import torch.nn.functional as F

from rsdistill.losses import KDLoss, build_method, kd_soft_loss, total_loss, weighted_terms
from rsdistill.losses import StepInputs, reads_teacher


def _logits(seed, batch=6, classes=5, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(batch, classes, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_soft_loss_matches_float64_references(temperature):
    s, t = _logits(0), _logits(1)
    got = kd_soft_loss(s.float(), t.float(), temperature).double()

    log_ps = torch.log_softmax(s / temperature, dim=1)
    log_pt = torch.log_softmax(t / temperature, dim=1)
    # Reference 1: torch's kl_div with probability targets, summed then averaged by hand.
    ref_kl_div = F.kl_div(log_ps, log_pt.exp(), reduction="sum") / s.shape[0]
    # Reference 2: the definition, sum_c p_t (log p_t - log p_s).
    ref_explicit = (log_pt.exp() * (log_pt - log_ps)).sum(dim=1).mean()

    t2 = temperature**2
    assert got.item() == pytest.approx(t2 * ref_kl_div.item(), rel=1e-5, abs=1e-7)
    assert got.item() == pytest.approx(t2 * ref_explicit.item(), rel=1e-5, abs=1e-7)


def test_soft_loss_two_class_closed_form():
    # T = 2, teacher logits (2 ln 3, 0) -> p_t = (3/4, 1/4); student (0, 0) -> p_s = (1/2, 1/2).
    # KL = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.1308120360..., times T^2 = 4.
    teacher = torch.tensor([[2 * math.log(3.0), 0.0]])
    student = torch.zeros(1, 2)
    assert kd_soft_loss(student, teacher, 2.0).item() == pytest.approx(0.5232481440, rel=1e-6)


def test_soft_loss_is_zero_when_student_equals_teacher():
    s = _logits(2).float()
    assert kd_soft_loss(s, s.clone(), 4.0).abs().item() < 1e-6


def test_soft_loss_is_t_squared_times_kl_at_t():
    s, t = _logits(3).float(), _logits(4).float()
    for temperature in (2.0, 5.0):
        kl = F.kl_div(
            torch.log_softmax(s / temperature, 1),
            torch.softmax(t / temperature, 1),
            reduction="batchmean",
        )
        assert kd_soft_loss(s, t, temperature).item() == pytest.approx(
            temperature**2 * kl.item(), rel=1e-5
        )


def _grad_norm(fn, s, t):
    s = s.clone().requires_grad_(True)
    fn(s, t).backward()
    return s.grad.norm().item()


def test_t_squared_keeps_gradient_size_roughly_constant():
    s, t = _logits(5, scale=1.0).float(), _logits(6, scale=1.0).float()
    with_t2 = [_grad_norm(lambda a, b: kd_soft_loss(a, b, T), s, t) for T in (4.0, 8.0)]
    without = [_grad_norm(lambda a, b: kd_soft_loss(a, b, T) / T**2, s, t) for T in (4.0, 8.0)]
    assert 1 / 1.5 < with_t2[0] / with_t2[1] < 1.5
    # Without the T^2 factor doubling T would cut the gradient by about 4.
    assert 3.0 < without[0] / without[1] < 5.0


def test_soft_loss_gradient_equals_soft_target_cross_entropy_gradient():
    temperature = 3.0
    s, t = _logits(7), _logits(8)

    s1 = s.clone().requires_grad_(True)
    kd_soft_loss(s1, t, temperature).backward()

    s2 = s.clone().requires_grad_(True)
    p_t = torch.softmax(t / temperature, dim=1)
    ce = -(p_t * torch.log_softmax(s2 / temperature, dim=1)).sum(dim=1).mean() * temperature**2
    ce.backward()

    torch.testing.assert_close(s1.grad.double(), s2.grad, rtol=1e-5, atol=1e-7)
    assert s1.grad.abs().max() > 1e-3  # a zero gradient would pass the comparison trivially


def test_no_gradient_reaches_the_teacher():
    s = _logits(9).float().requires_grad_(True)
    t = _logits(10).float().requires_grad_(True)
    kd_soft_loss(s, t, 4.0).backward()
    assert t.grad is None


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        kd_soft_loss(torch.zeros(2, 3), torch.zeros(2, 4), 1.0)


@pytest.fixture
def batch():
    s, t = _logits(11).float(), _logits(12).float()
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    return s, t, labels


def test_alpha_zero_is_plain_cross_entropy(batch):
    s, t, labels = batch
    loss = KDLoss(temperature=4.0)

    def total(inputs):
        return total_loss(weighted_terms(loss, inputs, 0.0))

    assert torch.equal(total(StepInputs(s, labels, t)), F.cross_entropy(s, labels))
    assert reads_teacher(loss, 0.0) is False and reads_teacher(loss, 0.5) is True
    # The teacher is neither needed nor able to leak a nan into the total.
    assert torch.equal(total(StepInputs(s, labels)), F.cross_entropy(s, labels))
    nan_teacher = torch.full_like(t, float("nan"))
    assert torch.isfinite(total(StepInputs(s, labels, nan_teacher)))


def test_alpha_one_is_the_soft_term(batch):
    s, t, labels = batch
    terms = weighted_terms(KDLoss(temperature=4.0), StepInputs(s, None, t), 1.0)
    assert terms["hard"].item() == 0.0
    assert torch.equal(total_loss(terms), kd_soft_loss(s, t, 4.0))


def test_alpha_mixes_soft_and_hard(batch):
    s, t, labels = batch
    loss = KDLoss(temperature=4.0)
    terms = weighted_terms(loss, StepInputs(s, labels, t), 0.3)
    soft, hard = kd_soft_loss(s, t, 4.0), F.cross_entropy(s, labels)
    assert set(terms) == {"soft", "hard"}
    # The loss itself returns its terms unweighted; the blend is the distiller's.
    unweighted = loss(StepInputs(s, labels, t))
    torch.testing.assert_close(unweighted["soft"], soft)
    torch.testing.assert_close(unweighted["hard"], hard)
    torch.testing.assert_close(terms["soft"], 0.3 * soft)
    torch.testing.assert_close(terms["hard"], 0.7 * hard)
    torch.testing.assert_close(total_loss(terms), 0.3 * soft + 0.7 * hard)


def test_label_smoothing_reaches_the_hard_term(batch):
    s, t, labels = batch
    terms = KDLoss(temperature=4.0, label_smoothing=0.1)(StepInputs(s, labels, t))
    torch.testing.assert_close(terms["hard"], F.cross_entropy(s, labels, label_smoothing=0.1))
    assert not torch.allclose(terms["hard"], F.cross_entropy(s, labels))


def test_alpha_positive_without_teacher_is_an_error(batch):
    s, _, labels = batch
    with pytest.raises(ValueError, match="teacher"):
        weighted_terms(KDLoss(temperature=4.0), StepInputs(s, labels), 0.5)


def test_soft_loss_is_float32_under_bf16_autocast(batch):
    s, t, labels = batch
    reference = kd_soft_loss(s, t, 4.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = build_method("kd", alpha=1.0, temperature=4.0)
        terms = loss(StepInputs(s.bfloat16(), labels, t.bfloat16()))
    assert terms["soft"].dtype == torch.float32
    # Only the bf16 rounding of the logits themselves remains.
    assert terms["soft"].item() == pytest.approx(reference.item(), rel=2e-2)
