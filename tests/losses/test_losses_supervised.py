import pytest
import torch
import torch.nn.functional as F

from rsdistill.errors import ConfigError
from rsdistill.losses import (
    METHODS,
    CrossEntropyLoss,
    DistillationLoss,
    KDLoss,
    build_method,
    total_loss,
)
from rsdistill.losses import StepInputs


def test_none_is_plain_cross_entropy_without_teacher():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(4, 3, generator=g)
    labels = torch.tensor([0, 2, 1, 2])
    loss = build_method("none", label_smoothing=0.1)
    assert isinstance(loss, CrossEntropyLoss)
    assert loss.needs_teacher is False
    terms = loss(StepInputs(s, labels))
    assert set(terms) == {"hard"}
    assert torch.equal(total_loss(terms), F.cross_entropy(s, labels, label_smoothing=0.1))


def test_registry_holds_both_methods_and_builds_them():
    assert {"kd", "none"} <= set(METHODS.names())
    kd = build_method("kd", alpha=0.5, temperature=4)
    assert isinstance(kd, KDLoss) and isinstance(kd, DistillationLoss)
    assert kd.needs_teacher is True
    assert kd.temperature == 4.0


@pytest.mark.parametrize(
    "name, settings, message",
    [
        ("kdd", {}, "unknown distillation method"),
        ("kd", {"options": {"temprature": 4.0}}, "temprature"),
        ("kd", {"options": {"temperature": 4.0}}, "set it with --temperature"),
        ("none", {"options": {"alpha": 0.5}}, "alpha"),
        ("kd", {"label_smoothing": 1.0}, "label_smoothing"),
        ("fitnet", {"options": {"hint_weight": -1}}, "hint_weight"),
    ],
)
def test_bad_names_and_options_are_config_errors(name, settings, message):
    with pytest.raises(ConfigError, match=message):
        build_method(name, **settings)
