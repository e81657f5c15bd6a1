"""Optimisers and schedules are looked up by name; the schedules have the promised shape."""

from __future__ import annotations

import math

import pytest
import torch

from rsdistill.runtime.optim import OPTIMIZERS, SCHEDULES, build_optimizer, build_scheduler
from rsdistill.errors import ConfigError


def _params():
    return [torch.nn.Parameter(torch.ones(3))]


def test_registered_names():
    assert {"sgd", "adamw"} <= set(OPTIMIZERS.names())
    assert {"cosine", "onecycle"} <= set(SCHEDULES.names())


def test_sgd_uses_the_given_hyperparameters():
    opt = build_optimizer("sgd", _params(), lr=0.1, weight_decay=5e-4, momentum=0.9)
    assert isinstance(opt, torch.optim.SGD)
    g = opt.param_groups[0]
    assert (g["lr"], g["weight_decay"], g["momentum"]) == (0.1, 5e-4, 0.9)


def test_adamw():
    opt = build_optimizer("adamw", _params(), lr=1e-3, weight_decay=0.05, momentum=0.9)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.param_groups[0]["weight_decay"] == 0.05


def test_unknown_optimizer_is_a_config_error_listing_the_choices():
    with pytest.raises(ConfigError, match="adam.*sgd|sgd.*adam") as exc:
        build_optimizer("rmsprop", _params(), lr=0.1, weight_decay=0.0, momentum=0.0)
    assert "rmsprop" in str(exc.value)


def test_unknown_schedule_is_a_config_error():
    opt = build_optimizer("sgd", _params(), lr=0.1, weight_decay=0.0, momentum=0.0)
    with pytest.raises(ConfigError, match="'step'"):
        build_scheduler("step", opt, total_steps=10, warmup_steps=0)


def _lrs(name: str, total: int, warmup: int = 0, lr: float = 1.0) -> list[float]:
    opt = build_optimizer("sgd", _params(), lr=lr, weight_decay=0.0, momentum=0.0)
    sched = build_scheduler(name, opt, total_steps=total, warmup_steps=warmup)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    out.append(opt.param_groups[0]["lr"])  # after the last step
    return out


def test_cosine_goes_from_the_peak_to_about_zero():
    lrs = _lrs("cosine", total=100, lr=0.5)
    assert lrs[0] == pytest.approx(0.5)
    assert lrs[50] == pytest.approx(0.25, abs=1e-9)
    assert lrs[99] < 0.5 * 1e-3
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(lrs, lrs[1:])), "cosine decay must not increase"


def test_cosine_warmup_ramps_linearly_then_decays():
    lrs = _lrs("cosine", total=20, warmup=4)
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_onecycle_rises_to_the_peak_then_anneals():
    lrs = _lrs("onecycle", total=100)
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    assert lrs[0] < 0.1
    assert lrs[peak] == pytest.approx(1.0)
    assert 20 <= peak <= 40  # ~30% of the run
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:]))
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_schedule_factors_are_finite_for_one_step_runs():
    for name in SCHEDULES.names():
        f = SCHEDULES.get(name)(1, 0)
        assert all(math.isfinite(f(s)) for s in range(3)), name


# ----------------------------------------------------------------- fine-tuning groups
def _groups(model, scale, extra=()):
    from rsdistill.training.members import parameter_groups

    params = [*model.parameters(), *extra]
    return params, parameter_groups(params, model, lr=0.1, backbone_lr_scale=scale)


def test_a_backbone_scale_of_one_keeps_a_single_group():
    from rsdistill.models import build_model

    params, groups = _groups(build_model("resnet8", 5), 1.0)
    assert groups == params


@pytest.mark.parametrize("name, head", [("resnet8", "fc"), ("timm:resnet18", "fc"),
                                        ("timm:tf_efficientnet_lite0", "classifier")])
def test_the_classifier_learns_at_lr_and_the_backbone_at_its_scale(name, head):
    from rsdistill.models import build_model

    model = build_model(name, 5, image_size=32)
    regressor = torch.nn.Parameter(torch.zeros(4))  # a loss's parameter: new, full rate
    params, groups = _groups(model, 0.2, [regressor])
    opt = build_optimizer("sgd", groups, lr=0.1, weight_decay=0.0, momentum=0.9)
    fast, slow = opt.param_groups
    head_params = list(getattr(model, head).parameters())
    assert {id(p) for p in fast["params"]} == {id(p) for p in [*head_params, regressor]}
    assert len(fast["params"]) + len(slow["params"]) == len(params)
    assert fast["lr"] == pytest.approx(0.1) and slow["lr"] == pytest.approx(0.02)
    # The schedule scales both groups alike, and the logged lr is the full rate's.
    sched = build_scheduler("cosine", opt, total_steps=10, warmup_steps=2)
    assert sched.get_last_lr() == pytest.approx([0.05, 0.01])


def test_a_model_without_a_known_classifier_cannot_split():
    net = torch.nn.Sequential(torch.nn.Linear(3, 3))
    with pytest.raises(ConfigError, match="classifier"):
        _groups(net, 0.5)


def test_a_backbone_scale_must_be_a_number_at_least_zero():
    from rsdistill.training.config import TrainConfig

    for bad in (-0.1, float("nan")):
        with pytest.raises(ConfigError, match="--backbone-lr-scale"):
            TrainConfig(backbone_lr_scale=bad).validate()
    TrainConfig(backbone_lr_scale=0.0).validate()  # a frozen backbone is allowed
