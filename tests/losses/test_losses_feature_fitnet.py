"""FitNet: the middle-stage hint, its regressor sized by a dry run, and where gradients go."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from rsdistill.training.distiller import Distiller, example_input
from rsdistill.errors import ConfigError
from rsdistill.losses import FitNetLoss, build_method
from rsdistill.losses.spatial import resize_to
from rsdistill.models import build_model
from rsdistill.training.distiller import TrainStep


def _models(student="resnet8", teacher="resnet8x4", size=16):
    torch.manual_seed(0)
    return build_model(student, 3, size), build_model(teacher, 3, size)


def _batch(n=4, size=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_default_hint_is_the_middle_stage():
    loss = FitNetLoss()
    assert loss.default_layers(("layer1", "layer2", "layer3")) == ("layer2",)
    mobilenet = build_model("mobilenetv2", 3, 16)
    assert loss.default_layers(mobilenet.stage_names) == ("layer4",)


def test_setup_sizes_the_regressor_from_the_real_feature_maps():
    student, teacher = _models()
    d = Distiller(student, FitNetLoss(), teacher, alpha=0.5, example_input=example_input(16))
    assert d.student_layers == ("layer2",) and d.teacher_layers == ("layer2",)
    conv, bn, relu = d.loss.regressor
    # resnet8 layer2 has 32 channels, resnet8x4 layer2 has 128.
    assert conv.weight.shape == (128, 32, 1, 1) and bn.num_features == 128
    # A ResNet stage ends in a ReLU, so its maps are never negative: nor is the regressor's.
    assert isinstance(relu, nn.ReLU)
    d.close()


def test_the_regressor_ends_in_a_relu_only_where_the_teachers_stage_does():
    # A WRN block is pre-activation (its output is conv + shortcut, negative values too).
    student = build_model("resnet8", 3, 16)
    wrn = build_model("wrn_16_2", 3, 16)
    d = Distiller(student, FitNetLoss(), wrn, alpha=0.5, example_input=example_input(16))
    assert [type(m) for m in d.loss.regressor] == [nn.Conv2d, nn.BatchNorm2d]
    d.close()
    for setting, expected in ((True, 3), (False, 2)):
        d = Distiller(build_model("resnet8", 3, 16), FitNetLoss(regressor_relu=setting),
                      wrn, alpha=0.5, example_input=example_input(16))
        assert len(d.loss.regressor) == expected
        d.close()


def test_the_relu_probe_draws_nothing_from_the_global_rng():
    student, teacher = _models()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    d = Distiller(student, FitNetLoss(regressor_relu=True), teacher, alpha=0.5,
                  example_input=example_input(16))
    after_fixed = torch.rand(3)
    d.close()
    torch.manual_seed(7)
    d = Distiller(student, FitNetLoss(), teacher, alpha=0.5, example_input=example_input(16))
    assert torch.equal(torch.rand(3), after_fixed)  # auto draws what a fixed choice draws
    d.close()
    assert not torch.equal(after_fixed, expected)  # the regressor's init itself draws


@pytest.mark.parametrize("value", ["yes", 1, 0.5])
def test_a_bad_regressor_relu_is_a_config_error(value):
    with pytest.raises(ConfigError, match="regressor_relu"):
        FitNetLoss(regressor_relu=value)


def test_dry_run_leaves_batch_norm_statistics_and_modes_alone():
    student, teacher = _models()
    student.train()
    before = {k: v.clone() for k, v in student.state_dict().items()}
    d = Distiller(student, FitNetLoss(), teacher, alpha=0.5, example_input=example_input(16))
    assert student.training
    for k, v in student.state_dict().items():
        assert torch.equal(v, before[k]), k
    d.close()


def _identity_regressor(loss: FitNetLoss) -> None:
    conv, bn = loss.regressor[:2]
    with torch.no_grad():
        conv.weight.copy_(torch.eye(conv.weight.shape[0]).view_as(conv.weight))
    bn.eval()  # running mean 0, var 1: the regressor is x / sqrt(1 + eps)


def test_hint_is_minimal_when_the_student_is_the_teacher_and_positive_otherwise():
    student, teacher = _models("resnet8", "resnet8")
    teacher.load_state_dict(student.state_dict())
    d = Distiller(student, FitNetLoss(), teacher, alpha=1.0, example_input=example_input(16))
    _identity_regressor(d.loss)
    d.eval()
    x, y = _batch()
    with torch.no_grad():
        _, same = d.forward_train(TrainStep(x, y))
        assert same["hint"].item() < 1e-6
        assert same["hard"].item() == 0.0  # alpha = 1
        for p in student.parameters():  # a different student: same architecture, other weights
            p.add_(0.1 * torch.randn_like(p))
        _, other = d.forward_train(TrainStep(x, y))
    assert other["hint"].item() > 1e-3
    d.close()


def test_gradients_reach_the_student_and_regressor_but_not_the_teacher():
    student, teacher = _models()
    d = Distiller(student, FitNetLoss(), teacher, alpha=0.5, example_input=example_input(16))
    trainable = {id(p) for p in d.trainable_parameters()}
    assert {id(p) for p in d.loss.regressor.parameters()} <= trainable
    assert not trainable & {id(p) for p in teacher.parameters()}
    d.train()
    x, y = _batch()
    _, terms = d.forward_train(TrainStep(x, y))
    (terms["hint"] + terms["hard"]).backward()
    assert d.loss.regressor[0].weight.grad.abs().sum() > 0
    assert student.layer1[0].conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
    d.close()


def test_weighting_is_alpha_times_hint_weight_times_mse():
    student, teacher = _models()
    loss = build_method("fitnet", alpha=0.25, temperature=4.0, options={"hint_weight": 50})
    assert loss.hint_weight == 50.0
    d = Distiller(student, loss, teacher, alpha=0.25, example_input=example_input(16))
    d.eval()
    x, y = _batch()
    with torch.no_grad():
        _, terms = d.forward_train(TrainStep(x, y))
        s_map = student.layer2(student.layer1(student.stem_pool(student.relu(student.bn1(
            student.conv1(x))))))
        t_map = teacher.layer2(teacher.layer1(teacher.stem_pool(teacher.relu(teacher.bn1(
            teacher.conv1(x))))))
        mse = torch.mean((d.loss.regressor(s_map) - t_map) ** 2)
    assert terms["hint"].item() == pytest.approx(0.25 * 50 * mse.item(), rel=1e-5)
    d.close()


@pytest.mark.parametrize("s_layer, t_layer", [("layer1", "layer3"), ("layer3", "layer1")])
def test_maps_of_other_sizes_are_resized_to_the_teachers(s_layer, t_layer):
    # At 16 px: layer1 is 16x16, layer3 is 4x4 -> pooled down, or interpolated up.
    student, teacher = _models()
    d = Distiller(student, FitNetLoss(), teacher, alpha=0.5, student_layers=[s_layer],
                  teacher_layers=[t_layer], example_input=example_input(16))
    x, y = _batch()
    _, terms = d.forward_train(TrainStep(x, y))
    assert torch.isfinite(terms["hint"]) and terms["hint"].item() > 0
    terms["hint"].backward()
    assert student.get_submodule(s_layer)[0].conv1.weight.grad.abs().sum() > 0
    d.close()


def test_resize_pools_down_and_interpolates_up():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    down = resize_to(x, (2, 2))
    assert torch.allclose(down, torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))
    up = resize_to(torch.ones(1, 1, 2, 2) * 3, (5, 5))
    assert up.shape == (1, 1, 5, 5) and torch.allclose(up, torch.full_like(up, 3.0))
    assert resize_to(x, (4, 4)) is x


def test_alpha_zero_builds_no_regressor_and_needs_no_teacher():
    student, teacher = _models()
    loss = FitNetLoss()
    d = Distiller(student, loss, teacher, alpha=0.0, example_input=example_input(16))
    assert loss.regressor is None and not d.uses_features and not d.needs_teacher
    x, y = _batch()
    _, terms = d.forward_train(TrainStep(x, y))
    assert terms["hint"].item() == 0.0 and terms["hard"].item() > 0


@pytest.mark.parametrize("layers, message", [
    ({"student_layers": ["layer1", "layer2"]}, "exactly one"),
    ({"student_layers": ["fc"]}, "feature map"),
    ({"teacher_layers": ["layer7"]}, "layer7"),
])
def test_bad_layer_choices_fail_in_setup_and_leave_no_hooks(layers, message):
    student, teacher = _models()
    with pytest.raises(ConfigError, match=message):
        Distiller(student, FitNetLoss(), teacher, alpha=0.5, example_input=example_input(16),
                  **layers)
    for model in (student, teacher):
        assert all(not m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("value", [-1.0, float("nan"), "50", True])
def test_hint_weight_is_validated(value):
    with pytest.raises(ConfigError, match="hint_weight"):
        FitNetLoss(hint_weight=value)


def test_a_feature_method_needs_a_teacher():
    student, _ = _models()
    with pytest.raises(ConfigError, match="teacher"):
        Distiller(student, FitNetLoss(), None, alpha=0.5, example_input=example_input(16))


def test_model_without_stages_asks_for_layer_names():
    student, teacher = _models()
    plain = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 3))
    with pytest.raises(ConfigError, match="--teacher-layers"):
        Distiller(student, FitNetLoss(), plain, alpha=0.5, example_input=example_input(16))
    # Named explicitly, any 4-D module works (here "1", the ReLU after the conv).
    d = Distiller(student, FitNetLoss(), plain, alpha=0.5, teacher_layers=["1"],
                  example_input=example_input(16))
    assert d.loss.regressor[0].weight.shape == (8, 32, 1, 1)
    d.close()
