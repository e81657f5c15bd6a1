"""Model size and cost: parameters, FLOPs, and the first weight layer.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode`, which counts
2 FLOPs per multiply-add and only counts matmul/convolution-like ops (BN,
activations and pooling are not counted). Numbers are for one image.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from rsdistill.errors import ConfigError


def count_parameters(model: nn.Module) -> int:
    """All parameters, trainable or frozen."""
    return sum(p.numel() for p in model.parameters())


def _example_input(model: nn.Module, image_size: int, in_chans: int) -> torch.Tensor:
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    return torch.zeros(1, in_chans, image_size, image_size, device=device, dtype=dtype)


def count_flops(model: nn.Module, image_size: int, in_chans: int = 3) -> int:
    """FLOPs of one forward pass on a 1 x in_chans x image_size x image_size input."""
    # Eval mode so BN uses running stats and does not update them; each module's own
    # flag is restored afterwards (a partly frozen model may mix train and eval).
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(_example_input(model, image_size, in_chans))
    finally:
        for module, training in modes:
            module.training = training
    return int(counter.get_total_flops())


def first_weight_layer(model: nn.Module) -> tuple[str, nn.Module]:
    """The first Conv2d or Linear in ``named_modules()`` order (e.g. for input-layer attacks/saliency)."""
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            return name, module
    raise ConfigError(f"{type(model).__name__} has no Conv2d or Linear layer")


def describe_models(names: Iterable[str], image_size: int, num_classes: int) -> list[dict]:
    """``[{"name", "params", "flops"}, ...]`` for the given model names, in order."""
    from rsdistill.models.registry import build_model

    rows = []
    for name in names:
        model = build_model(name, num_classes=num_classes, image_size=image_size)
        rows.append({"name": name, "params": count_parameters(model), "flops": count_flops(model, image_size)})
    return rows
