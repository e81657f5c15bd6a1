"""CIFAR-style ResNets (depth 6n+2, BasicBlock), as used by CRD/RepDistiller.

``resnetN`` has a 16-channel stem and stages of 16/32/64 channels; ``resnetNx4`` is
four times wider (stem 32, stages 64/128/256). Shortcuts that change shape use a 1x1
conv + BN (option B), which is what the published parameter counts assume.

Module names: ``conv1``, ``bn1``, ``stem_pool`` (Identity at 32 px), ``layer1..layer3``,
``avgpool``, ``fc``; ``stage_names`` lists the stages for feature hooks.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn

from rsdistill.errors import ConfigError
from rsdistill.models.common import init_weights, make_stage
from rsdistill.models.registry import MODELS
from rsdistill.models.stem import make_stem


class BasicBlock(nn.Module):
    def __init__(self, in_chans: int, out_chans: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, out_chans, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chans)
        self.conv2 = nn.Conv2d(out_chans, out_chans, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chans)
        # Not in-place: forward hooks must see the tensors they captured unmodified.
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or in_chans != out_chans:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_chans, out_chans, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_chans),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetSmall(nn.Module):
    stage_names = ("layer1", "layer2", "layer3")

    def __init__(
        self,
        num_classes: int,
        image_size: int,
        in_chans: int = 3,
        *,
        depth: int,
        widths: tuple[int, int, int, int],
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ConfigError(f"CIFAR ResNet depth must be 6n+2 with n >= 1, got {depth}")
        blocks_per_stage = (depth - 2) // 6
        stem_width, *stage_widths = widths
        conv, pool = make_stem(in_chans, stem_width, image_size)
        self.conv1 = conv
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU()
        self.stem_pool = pool
        chans = stem_width
        for index, (width, stride) in enumerate(zip(stage_widths, (1, 2, 2)), start=1):
            setattr(self, f"layer{index}", make_stage(BasicBlock, chans, width, blocks_per_stage, stride))
            chans = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(chans, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_pool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


_NARROW = (16, 16, 32, 64)
_WIDE = (32, 64, 128, 256)
_VARIANTS = {
    **{f"resnet{d}": (d, _NARROW) for d in (8, 14, 20, 32, 44, 56, 110)},
    **{f"resnet{d}x4": (d, _WIDE) for d in (8, 32)},
}

for _name, (_depth, _widths) in _VARIANTS.items():
    MODELS.add(_name, partial(ResNetSmall, depth=_depth, widths=_widths))
