"""Mixup and CutMix on a training batch, drawn once and applied to every view of it.

With a teacher, the mixed image's target can be the teacher's prediction on that very
image ("function matching", Beyer et al., CVPR 2022): the student then learns the
teacher's function between scenes, not just at them. Without one, the labels are
mixed in the same proportion (Zhang et al., ICLR 2018; Yun et al., ICCV 2019).

Like :mod:`rsdistill.data.augment`, parameters are sampled once per batch and the
CutMix box is relative, so a 64 px teacher view and a 32 px student view are mixed
with the same partner, the same weight and the same region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rsdistill.errors import ConfigError

MIX_MODES = ("none", "mixup", "cutmix")


@dataclass(frozen=True)
class MixParams:
    perm: torch.Tensor  # int64 N: partner of each image
    lam: float  # weight of the image itself (after CutMix: its share of the area)
    box: tuple[float, float, float, float] | None  # CutMix region (top, left, bottom, right) in [0, 1]


def check_mix(mode: str, alpha: float, prob: float = 1.0) -> None:
    if not (math.isfinite(prob) and 0.0 <= prob <= 1.0):
        raise ConfigError(f"--mix-prob must be a number in [0, 1] (the share of images that "
                          f"get a partner), got {prob!r}")
    if mode not in MIX_MODES:
        raise ConfigError(f"--mix must be one of {', '.join(MIX_MODES)}, got {mode!r}")
    if mode != "none" and not (math.isfinite(alpha) and alpha > 0):
        raise ConfigError(f"--mix-alpha must be a number > 0 (the Beta(a, a) of the mixing "
                          f"weight), got {alpha!r}")


def _pixels(box: tuple[float, float, float, float], h: int, w: int) -> tuple[int, int, int, int]:
    top, left, bottom, right = box
    return (int(round(top * h)), int(round(left * w)), int(round(bottom * h)), int(round(right * w)))


def label_rows(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """One-hot rows (float32 N×K); an unlabelled image (label < 0, a transfer set's) gets a
    row of zeros: its share of a mix carries no label."""
    known = labels >= 0
    return F.one_hot(labels.clamp_min(0), num_classes).float().mul_(known.unsqueeze(1))


@dataclass(frozen=True)
class BatchMix:
    mode: str = "none"
    alpha: float = 1.0
    # Share of the images that get a partner; the others stay whole (their partner is
    # themselves). Below 1 keeps most views close to real scenes, milder for small inputs.
    prob: float = 1.0

    def __post_init__(self) -> None:
        check_mix(self.mode, self.alpha, self.prob)

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def sample(self, n: int, generator: torch.Generator) -> MixParams:
        perm = torch.randperm(n, generator=generator)
        if self.prob < 1.0:  # drawn only then: runs at prob 1 keep their random stream
            whole = torch.rand(n, generator=generator) >= self.prob
            perm = torch.where(whole, torch.arange(n), perm)
        # torch has no seeded Beta sampler; a numpy one seeded from the run's generator
        # keeps the draw inside the run's single random stream.
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        lam = float(np.random.default_rng(seed).beta(self.alpha, self.alpha))
        if self.mode == "mixup":
            return MixParams(perm, lam, None)
        # CutMix: a box with (1 - λ) of the area, centred uniformly, clipped to the image.
        cy, cx = torch.rand(2, generator=generator).tolist()
        half = math.sqrt(1.0 - lam) / 2
        box = (max(cy - half, 0.0), max(cx - half, 0.0), min(cy + half, 1.0), min(cx + half, 1.0))
        return MixParams(perm, lam, box)

    def apply(self, x: torch.Tensor, p: MixParams) -> torch.Tensor:
        """Mix a float batch N×C×H×W with its partners ``x[p.perm]``."""
        perm = p.perm.to(x.device)
        if p.box is None:
            return x.mul(p.lam).add_(x[perm], alpha=1.0 - p.lam)
        top, left, bottom, right = _pixels(p.box, x.shape[-2], x.shape[-1])
        out = x.clone()
        out[:, :, top:bottom, left:right] = x[perm][:, :, top:bottom, left:right]
        return out

    def weight(self, p: MixParams, size: tuple[int, int]) -> float:
        """The share of each image's own content in the mix, as seen at ``size``."""
        if p.box is None:
            return p.lam
        top, left, bottom, right = _pixels(p.box, *size)
        return 1.0 - (bottom - top) * (right - left) / float(size[0] * size[1])

    def targets(self, labels: torch.Tensor, num_classes: int, p: MixParams,
                size: tuple[int, int]) -> torch.Tensor:
        """Label distributions of the mixed images (rows sum to 1), float32 N×K."""
        lam = self.weight(p, size)
        one_hot = label_rows(labels, num_classes)
        return one_hot.mul(lam).add_(one_hot[p.perm.to(labels.device)], alpha=1.0 - lam)
