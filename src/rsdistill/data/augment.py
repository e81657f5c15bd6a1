"""Batch augmentation on tensors: flips, 90° rotations, reflect-pad random crops.

Parameters are drawn once per batch (:meth:`BatchAugment.sample`) and applied
with :meth:`BatchAugment.apply`, so the same draw can be applied to several views
of the same scenes at different resolutions (crop offsets are relative).
Overhead imagery has no "up", so all eight dihedral transforms are label-preserving.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentParams:
    hflip: torch.Tensor  # bool, N
    vflip: torch.Tensor  # bool, N
    rot90: torch.Tensor  # int64 in 0..3, N
    shift: torch.Tensor  # float N×2 in [0, 1]: crop offset as a fraction of the padding range


# Crop offsets are drawn on a grid of 2·CROP_STEPS + 1 positions (the 9 whole-pixel
# offsets at 32 px), so every view whose size is a multiple of 32 px crops exactly the
# same region: at 64 px an offset of k steps is 2k pixels, never a rounded 2k ± 1.
CROP_STEPS = 4


@dataclass(frozen=True)
class BatchAugment:
    hflip: bool = True
    vflip: bool = True
    rot90: bool = True
    crop: bool = True
    pad_fraction: float = 0.125  # 4 px at 32 px, as in the CIFAR recipe

    @property
    def enabled(self) -> bool:
        return self.hflip or self.vflip or self.rot90 or self.crop

    def sample(self, n: int, generator: torch.Generator) -> AugmentParams:
        def coin() -> torch.Tensor:
            return torch.rand(n, generator=generator) < 0.5

        hflip, vflip = coin(), coin()
        rot = torch.randint(0, 4, (n,), generator=generator)
        shift = torch.randint(0, 2 * CROP_STEPS + 1, (n, 2), generator=generator) / (2 * CROP_STEPS)
        off = torch.zeros(n, dtype=torch.bool)
        return AugmentParams(
            hflip=hflip if self.hflip else off,
            vflip=vflip if self.vflip else off,
            rot90=rot if self.rot90 else torch.zeros(n, dtype=torch.int64),
            shift=shift if self.crop else torch.full((n, 2), 0.5),
        )

    def apply(self, x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
        """Apply ``p`` to a float batch N×C×H×W (square images)."""
        if self.hflip:
            x = torch.where(p.hflip.view(-1, 1, 1, 1).to(x.device), x.flip(3), x)
        if self.vflip:
            x = torch.where(p.vflip.view(-1, 1, 1, 1).to(x.device), x.flip(2), x)
        if self.rot90:
            x = x.clone()
            for k in (1, 2, 3):
                sel = (p.rot90 == k).nonzero().flatten().to(x.device)
                if sel.numel():
                    x[sel] = torch.rot90(x[sel], k, dims=(2, 3))
        if self.crop:
            x = self._crop(x, p.shift)
        return x

    def _crop(self, x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        pad = int(round(self.pad_fraction * h))
        if pad == 0:
            return x
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        offsets = torch.round(shift * 2 * pad).long().to(x.device)  # 0..2*pad
        rows = offsets[:, 0:1] + torch.arange(h, device=x.device)  # N×H
        cols = offsets[:, 1:2] + torch.arange(w, device=x.device)  # N×W
        batch = torch.arange(n, device=x.device).view(n, 1, 1)
        # Advanced indexing gathers each sample's own window: result N×H×W×C.
        out = padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)]
        return out.permute(0, 3, 1, 2).contiguous()

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(x, self.sample(x.shape[0], generator))
