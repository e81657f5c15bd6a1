"""Building blocks shared by the small-input families: stage assembly and init."""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from rsdistill.errors import ConfigError

# Model names handed to timm carry this prefix (``timm:resnet18``).
TIMM_PREFIX = "timm:"


def check_timm_model(model_name: str, flag: str | None = None) -> str:
    """The timm name of ``timm:<name>``, or a one-line error (after ``flag``, when the
    caller knows which option named it) if timm has no such model. Checked without
    building it; timm is imported only here, when a timm: name is met: it is heavy."""
    import timm

    name = model_name[len(TIMM_PREFIX):]
    if not timm.is_model(name):
        where = f"{flag}: " if flag else ""
        raise ConfigError(f"{where}unknown timm model {model_name}; timm.list_models() lists "
                          "the valid names (give them as timm:<name>)")
    return name


def make_stage(
    block: Callable[[int, int, int], nn.Module], in_chans: int, out_chans: int, depth: int, stride: int
) -> nn.Sequential:
    """``depth`` blocks ``block(in, out, stride)``; only the first changes width and resolution."""
    first = block(in_chans, out_chans, stride)
    return nn.Sequential(first, *(block(out_chans, out_chans, 1) for _ in range(depth - 1)))


def init_weights(model: nn.Module) -> None:
    # He init suits the ReLU nets here; unit-gamma BN keeps the residual branches
    # at the scale the CIFAR recipes (and their KD baselines) were tuned with.
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def classifier_layer(model: nn.Module) -> nn.Module:
    """The layer that maps features to class logits: timm's ``get_classifier()``, the
    ``fc`` of this package's families."""
    if hasattr(model, "get_classifier"):
        return model.get_classifier()
    if isinstance(getattr(model, "fc", None), nn.Module):
        return model.fc
    raise ConfigError(f"{type(model).__name__} has no classifier rsdistill can find "
                      "(get_classifier() or fc)")
