"""MobileNetV2 for small inputs (the CIFAR variant of Sandler et al.).

Differences from the ImageNet network, so that 32 px inputs keep enough resolution:
the stem conv has stride 1 and the second bottleneck group (24 channels) has stride 1,
giving 32 -> 4 px at the last stage instead of 224 -> 7. Larger inputs are brought back
to ~32 px by the shared stem (:mod:`rsdistill.models.stem`).

Module names: ``conv1``/``bn1`` (stem), ``stem_pool``, ``layer1..layer7`` (one per
bottleneck group), ``conv2``/``bn2`` (1x1 to the feature width), ``avgpool``, ``fc``.
The classifier is ``fc`` (not ``classifier``) so that every family in this package
names it the same.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn

from rsdistill.models.common import init_weights, make_stage
from rsdistill.models.registry import MODELS
from rsdistill.models.stem import make_stem

# (expansion t, output channels c, repeats n, first stride s); row 2 uses s=1 for small inputs.
_BOTTLENECKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_LAST_CHANNELS = 1280


def make_divisible(value: float, divisor: int = 8) -> int:
    # Channel counts stay multiples of 8 (hardware-friendly) and never shrink by >10%,
    # the rounding rule of the reference implementation.
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn_act(in_chans: int, out_chans: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    conv = nn.Conv2d(in_chans, out_chans, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(out_chans), nn.ReLU6()]


class InvertedResidual(nn.Module):
    def __init__(self, in_chans: int, out_chans: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_chans * expansion
        layers = _conv_bn_act(in_chans, hidden, 1) if expansion != 1 else []
        layers += _conv_bn_act(hidden, hidden, 3, stride=stride, groups=hidden)
        # Linear bottleneck: no activation after the projection.
        layers += [nn.Conv2d(hidden, out_chans, 1, bias=False), nn.BatchNorm2d(out_chans)]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_chans == out_chans

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2Small(nn.Module):
    stage_names = tuple(f"layer{i}" for i in range(1, len(_BOTTLENECKS) + 1))

    def __init__(self, num_classes: int, image_size: int, in_chans: int = 3, *, width: float = 1.0) -> None:
        super().__init__()
        stem_chans = make_divisible(32 * width)
        conv, pool = make_stem(in_chans, stem_chans, image_size)
        self.conv1 = conv
        self.bn1 = nn.BatchNorm2d(stem_chans)
        self.relu = nn.ReLU6()
        self.stem_pool = pool
        chans = stem_chans
        for index, (expansion, base, repeats, stride) in enumerate(_BOTTLENECKS, start=1):
            out_chans = make_divisible(base * width)
            block = partial(InvertedResidual, expansion=expansion)
            setattr(self, f"layer{index}", make_stage(block, chans, out_chans, repeats, stride))
            chans = out_chans
        # Narrower nets keep the full 1280-wide head, as in the reference design.
        last = make_divisible(_LAST_CHANNELS * max(1.0, width))
        self.conv2 = nn.Conv2d(chans, last, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(last)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(last, num_classes)
        init_weights(self)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_pool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        x = self.relu(self.bn2(self.conv2(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


MODELS.add("mobilenetv2", partial(MobileNetV2Small, width=1.0))
MODELS.add("mobilenetv2_x0_5", partial(MobileNetV2Small, width=0.5))
