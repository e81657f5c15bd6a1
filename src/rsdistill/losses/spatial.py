"""Bringing two feature maps to one spatial size, for the feature-based losses.

A student and teacher stage can differ in resolution (a wider teacher with another
stem, or a hand-picked stage pair). Shrinking uses adaptive average pooling, which
averages every input position into exactly one output cell (bilinear downsampling
would skip rows and alias); enlarging uses bilinear interpolation, which adds no
information but gives a smooth map whose gradient spreads over the small one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``x`` of shape ``(N, C, H, W)`` (or ``(N, H, W)``) resized to ``size`` = (H', W')."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    squeeze = x.dim() == 3
    if squeeze:
        x = x.unsqueeze(1)
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        out = F.adaptive_avg_pool2d(x, size)
    else:
        # Mixed (taller but narrower) maps are rare; interpolation handles both directions.
        out = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return out.squeeze(1) if squeeze else out
