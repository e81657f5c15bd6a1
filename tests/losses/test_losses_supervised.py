import pytest
import torch
import torch.nn.functional as F

from rsdistill.errors import ConfigError
from rsdistill.losses import (
    DISTILL_LOSSES,
    CrossEntropyLoss,
    DistillationLoss,
    KDLoss,
    build_distill_loss,
    total_loss,
)


def test_none_is_plain_cross_entropy_without_teacher():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(4, 3, generator=g)
    labels = torch.tensor([0, 2, 1, 2])
    loss = build_distill_loss("none", label_smoothing=0.1)
    assert isinstance(loss, CrossEntropyLoss)
    assert loss.needs_teacher is False
    terms = loss(s, None, labels)
    assert set(terms) == {"hard"}
    assert torch.equal(total_loss(terms), F.cross_entropy(s, labels, label_smoothing=0.1))


def test_registry_holds_both_methods_and_builds_them():
    assert {"kd", "none"} <= set(DISTILL_LOSSES.names())
    kd = build_distill_loss("kd", alpha=0.5, temperature=4)
    assert isinstance(kd, KDLoss) and isinstance(kd, DistillationLoss)
    assert kd.needs_teacher is True
    assert (kd.alpha, kd.temperature) == (0.5, 4.0)


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("kdd", {}, "unknown distillation method"),
        ("kd", {"alpha": 0.5, "temprature": 4.0}, "temprature"),
        ("kd", {"alpha": 0.5}, "needs option"),
        ("none", {"alpha": 0.5}, "alpha"),
        ("kd", {"alpha": 0.5, "temperature": 4.0, "label_smoothing": 1.0}, "label_smoothing"),
    ],
)
def test_bad_names_and_options_are_config_errors(name, options, message):
    with pytest.raises(ConfigError, match=message):
        build_distill_loss(name, **options)


def test_total_loss_sums_terms_and_rejects_empty():
    terms = {"a": torch.tensor(1.5), "b": torch.tensor(2.0), "c": torch.tensor(-0.5)}
    assert total_loss(terms).item() == 3.0
    with pytest.raises(ValueError):
        total_loss({})
