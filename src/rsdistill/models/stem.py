"""Input-size adaptation shared by every small-input family.

The CIFAR-style networks (ResNet-8..110, WRN, MobileNetV2-CIFAR) were designed so
their first stage runs at 32x32. Remote-sensing scenes are usually 64-256 px; running
the first stage at full resolution there would multiply compute by 4-64x and change
the receptive field the architecture was tuned for. So the stem downsamples until the
first stage sees roughly 32x32 again: the stem conv takes the first stride-2, further
halvings are stride-2 max-pools (as in the ImageNet ResNet stem). Every family builds
its stem through :func:`make_stem`, so they all agree on the feature-map sizes.
"""

from __future__ import annotations

import torch.nn as nn

# Halve while the result stays at least this big: 32..47 px stay at full resolution
# (the 32 px behaviour), 48..95 px get one halving, 96..191 two, and so on.
_MIN_STAGE_SIDE = 24


def stem_strides(image_size: int) -> list[int]:
    """Strides of the stem: ``[conv_stride, *max_pool_strides]``.

    ``32 -> [1]``, ``64 -> [2]``, ``128 -> [2, 2]``, ``256 -> [2, 2, 2]``.
    """
    halvings = 0
    while image_size / 2 ** (halvings + 1) >= _MIN_STAGE_SIDE:
        halvings += 1
    if halvings == 0:
        return [1]
    return [2] * halvings


def make_stem(in_chans: int, out_chans: int, image_size: int) -> tuple[nn.Conv2d, nn.Module]:
    """The stem conv (3x3) and the pooling that follows it (``nn.Identity`` at 32 px).

    The caller places its own norm/activation between the two.
    """
    conv_stride, *pool_strides = stem_strides(image_size)
    conv = nn.Conv2d(in_chans, out_chans, 3, stride=conv_stride, padding=1, bias=False)
    if not pool_strides:
        return conv, nn.Identity()
    pools = [nn.MaxPool2d(3, stride=s, padding=1) for s in pool_strides]
    return conv, nn.Sequential(*pools)
