"""The distiller: a trainable student next to a frozen teacher, and named loss terms."""

from __future__ import annotations

import copy

import pytest
import torch

from rsdistill.training.distiller import Distiller
from rsdistill.runtime.precision import resolve_precision
from rsdistill.losses import build_method, nuclear_norm
from rsdistill.models import build_model
from rsdistill.training.distiller import TrainStep


def _pair(alpha=0.5, beta=0.0):
    torch.manual_seed(0)
    teacher = build_model("resnet8x4", num_classes=3, image_size=16)
    # A teacher whose batch-norm statistics would visibly move if it ran in train mode.
    teacher.train()
    with torch.no_grad():
        teacher(torch.rand(8, 3, 16, 16) * 3 + 1)
    student = build_model("resnet8", num_classes=3, image_size=16)
    loss = build_method("kd", temperature=4.0)
    return Distiller(student, loss, teacher=teacher, nuclear_beta=beta, alpha=alpha), teacher


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_teacher_is_frozen_and_in_eval_mode():
    d, teacher = _pair()
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    d.train()
    assert d.training and d.student.training
    assert all(not m.training for m in teacher.modules()), "train() must keep the teacher in eval"
    d.eval()
    assert not d.student.training


def test_trainable_parameters_are_the_students_only():
    d, teacher = _pair()
    ids = {id(p) for p in d.trainable_parameters()}
    assert ids == {id(p) for p in d.student.parameters()}
    assert not ids & {id(p) for p in teacher.parameters()}


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_training_steps_leave_the_teacher_unchanged(precision):
    d, teacher = _pair(alpha=0.7, beta=0.7)
    prec = resolve_precision(precision, "cpu")
    prec.prepare_model(d)
    before_teacher, before_student = _snapshot(teacher), _snapshot(d.student)
    opt = torch.optim.SGD(d.trainable_parameters(), lr=0.1, momentum=0.9)
    d.train()
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = prec.prepare_input(torch.rand(8, 3, 16, 16, generator=gen))
        y = torch.randint(0, 3, (8,), generator=gen)
        with prec.autocast():
            _, terms = d.forward_train(TrainStep(x, y))
        opt.zero_grad()
        sum(terms.values()).backward()
        opt.step()
    after = _snapshot(teacher)
    assert after.keys() == before_teacher.keys()
    for k in after:  # weights and BN running stats / num_batches_tracked
        assert torch.equal(after[k], before_teacher[k]), k
    assert all(p.grad is None for p in teacher.parameters())
    moved = [k for k, v in _snapshot(d.student).items()
             if v.is_floating_point() and not torch.equal(v, before_student[k])]
    assert moved, "the student itself must have been trained"


def test_loss_terms_are_named_and_weighted():
    d, _ = _pair(alpha=0.25, beta=0.5)
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    logits, terms = d.forward_train(TrainStep(x, y))
    assert logits.shape == (4, 3)
    assert set(terms) == {"soft", "hard", "nuclear"}
    w = d.first_layer.weight
    assert terms["nuclear"].item() == pytest.approx(0.5 * nuclear_norm(w).item(), rel=1e-5)
    stats = d.first_layer_stats()
    assert stats["nuclear_norm"] == pytest.approx(nuclear_norm(w).item(), rel=1e-5)
    assert 1 <= stats["effective_rank"] <= min(w.shape[0], w[0].numel())


def test_no_nuclear_term_without_beta_and_no_teacher_call_at_alpha_zero():
    d, teacher = _pair(alpha=0.0, beta=0.0)
    calls = []
    teacher.register_forward_hook(lambda *a: calls.append(1))
    _, terms = d.forward_train(TrainStep(torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])))
    assert "nuclear" not in terms
    assert calls == []


def test_plain_training_distiller_has_no_teacher():
    student = build_model("resnet8", num_classes=3, image_size=16)
    d = Distiller(student, build_method("none"))
    assert d.teacher is None
    _, terms = d.forward_train(TrainStep(torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])))
    assert set(terms) == {"hard"}
    assert {id(p) for p in d.trainable_parameters()} == {id(p) for p in student.parameters()}
