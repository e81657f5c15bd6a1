"""Wide ResNets (Zagoruyko & Komodakis) for small inputs, as in CRD/RepDistiller.

``wrn_D_K``: depth D = 6n+4, widen factor K; stages of 16K/32K/64K channels built from
pre-activation blocks. Module names: ``conv1``, ``stem_pool``, ``block1..block3``,
``bn_final`` (the pre-activation BN before pooling), ``avgpool``, ``fc``.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn

from rsdistill.errors import ConfigError
from rsdistill.models.common import init_weights, make_stage
from rsdistill.models.registry import MODELS
from rsdistill.models.stem import make_stem


class PreActBlock(nn.Module):
    def __init__(self, in_chans: int, out_chans: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_chans)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_chans, out_chans, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chans)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_chans, out_chans, 3, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_chans != out_chans:
            self.shortcut = nn.Conv2d(in_chans, out_chans, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu1(self.bn1(x))
        # A projecting shortcut reads the activated input, as in the original WRN.
        identity = x if self.shortcut is None else self.shortcut(act)
        out = self.conv1(act)
        out = self.conv2(self.relu2(self.bn2(out)))
        return out + identity


class WideResNet(nn.Module):
    stage_names = ("block1", "block2", "block3")

    def __init__(self, num_classes: int, image_size: int, in_chans: int = 3, *, depth: int, widen: int) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ConfigError(f"WRN depth must be 6n+4 with n >= 1, got {depth}")
        blocks_per_stage = (depth - 4) // 6
        conv, pool = make_stem(in_chans, 16, image_size)
        self.conv1 = conv
        self.stem_pool = pool
        chans = 16
        for index, (base, stride) in enumerate(zip((16, 32, 64), (1, 2, 2)), start=1):
            width = base * widen
            setattr(self, f"block{index}", make_stage(PreActBlock, chans, width, blocks_per_stage, stride))
            chans = width
        self.bn_final = nn.BatchNorm2d(chans)
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(chans, num_classes)
        init_weights(self)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_pool(self.conv1(x))
        x = self.block3(self.block2(self.block1(x)))
        x = self.relu(self.bn_final(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


for _depth, _widen in ((16, 1), (16, 2), (40, 1), (40, 2)):
    MODELS.add(f"wrn_{_depth}_{_widen}", partial(WideResNet, depth=_depth, widen=_widen))
