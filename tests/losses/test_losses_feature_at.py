"""Attention transfer: the map, its scale invariance, resizing, weighting and gradients."""

from __future__ import annotations

import pytest
import torch

from rsdistill.training.distiller import Distiller, example_input
from rsdistill.errors import ConfigError
from rsdistill.losses import (
    AttentionTransferLoss,
    at_pair_loss,
    attention_map,
    build_method,
    weighted_terms,
)
from rsdistill.models import build_model
from rsdistill.training.distiller import TrainStep
from rsdistill.losses import StepInputs


def _maps(seed, shape=(2, 4, 4, 4)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


def test_attention_map_is_the_channel_mean_of_squares():
    x = torch.tensor([[[[1.0, -2.0]], [[3.0, 0.0]]]])  # (1, 2, 1, 2)
    assert torch.equal(attention_map(x), torch.tensor([[[5.0, 2.0]]]))  # (1+9)/2, (4+0)/2
    assert torch.allclose(attention_map(x, p=1.0), torch.tensor([[[2.0, 1.0]]]))


def test_pair_loss_closed_form():
    # Student attention (1, 0) and teacher (0, 1) after normalising: mean of (1, 1) = 1.
    s = torch.tensor([[[[1.0, 0.0]]]])
    t = torch.tensor([[[[0.0, 1.0]]]])
    assert at_pair_loss(s, t).item() == pytest.approx(1.0)


def test_zero_for_the_same_maps_and_invariant_to_their_scale():
    s = _maps(0)
    assert at_pair_loss(s, s.clone()).item() == 0.0
    # Normalised maps: a teacher with 3x larger activations asks for the same attention.
    assert at_pair_loss(s, 3.0 * s).item() == pytest.approx(0.0, abs=1e-12)
    # ... whatever its channel count: here 4 student channels vs 8 teacher ones.
    assert at_pair_loss(s, torch.cat([s, s], dim=1)).item() == pytest.approx(0.0, abs=1e-12)
    assert at_pair_loss(s, _maps(1)).item() > 0


def test_a_larger_student_map_is_pooled_to_the_teachers_size():
    t = _maps(2, (2, 3, 4, 4))
    # Every teacher position repeated as a 2x2 block: pooling gives the teacher's map back.
    s = t.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert at_pair_loss(s, t).item() == pytest.approx(0.0, abs=1e-12)
    # The other way round (student smaller) the map is interpolated and compared too.
    assert torch.isfinite(at_pair_loss(t, s))


def test_weighting_sums_the_pairs_with_the_papers_beta_over_two():
    s = [_maps(3), _maps(4, (2, 4, 2, 2))]
    t = [_maps(5), _maps(6, (2, 8, 2, 2))]
    loss = AttentionTransferLoss(at_weight=1000.0)
    logits, labels = torch.zeros(2, 3), torch.tensor([0, 1])
    terms = weighted_terms(loss, StepInputs(logits, labels, torch.zeros(2, 3), student_features=s,
                                            teacher_features=t), 0.4)
    expected = 0.4 * 500.0 * (at_pair_loss(s[0], t[0]) + at_pair_loss(s[1], t[1]))
    assert terms["at"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms["hard"].item() == pytest.approx(0.6 * torch.log(torch.tensor(3.0)).item())


def _pair():
    torch.manual_seed(0)
    return build_model("resnet8", 3, 16), build_model("resnet8x4", 3, 16)


def test_distiller_taps_every_stage_and_only_the_student_learns():
    student, teacher = _pair()
    loss = build_method("at", alpha=0.5, temperature=4.0)
    d = Distiller(student, loss, teacher, alpha=0.5, example_input=example_input(16))
    assert d.student_layers == d.teacher_layers == ("layer1", "layer2", "layer3")
    assert {id(p) for p in d.trainable_parameters()} == {id(p) for p in student.parameters()}
    d.train()
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    _, terms = d.forward_train(TrainStep(x, y))
    assert terms["at"].item() > 0
    terms["at"].backward()
    assert student.layer1[0].conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
    d.close()


def test_identical_student_and_teacher_give_zero():
    student, _ = _pair()
    teacher = build_model("resnet8", 3, 16)
    teacher.load_state_dict(student.state_dict())
    d = Distiller(student, AttentionTransferLoss(), teacher, alpha=1.0,
                  example_input=example_input(16))
    d.eval()
    with torch.no_grad():
        _, terms = d.forward_train(TrainStep(torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])))
    assert terms["at"].item() == pytest.approx(0.0, abs=1e-9)
    d.close()


def test_unequal_layer_counts_are_refused():
    student, teacher = _pair()
    with pytest.raises(ConfigError, match="one to one"):
        Distiller(student, AttentionTransferLoss(), teacher, alpha=0.5,
                  student_layers=["layer1", "layer2"], example_input=example_input(16))


@pytest.mark.parametrize("options, name", [({"at_weight": -1}, "at_weight"), ({"at_p": 0}, "at_p")])
def test_options_are_validated(options, name):
    with pytest.raises(ConfigError, match=name):
        build_method("at", alpha=0.5, temperature=4.0, options=options)
