"""View recipes: how each augmented training view is made, so it can be made again.

A recipe names one view of one training image: its flips, quarter turns and crop offset
(:mod:`rsdistill.data.augment`), and the partner it is mixed with and how (Mixup weight
or CutMix box, :mod:`rsdistill.data.mix`). A round holds one recipe per training image.
The teacher labels the views of a round once (``training/view_bank.py``); a student
later regenerates exactly those pixels from the cached uint8 tensor and the recipe, so
it never needs the teacher again. Everything is relative (crop offsets on a grid, boxes
in [0, 1]), so the same recipe makes the same view at the teacher's and the student's
resolution, as a live batch does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Iterator

import numpy as np
import torch

from rsdistill.data.augment import AugmentParams, BatchAugment
from rsdistill.data.loader import Batch, Normalizer
from rsdistill.data.mix import BatchMix, _pixels, label_rows


@dataclass(frozen=True)
class ViewRecipes:
    """One recipe per view (position ``i`` of the round), as tensors of length V."""

    rows: torch.Tensor  # int64: the dataset row of the view's own image
    hflip: torch.Tensor  # bool
    vflip: torch.Tensor  # bool
    rot90: torch.Tensor  # int64 in 0..3
    shift: torch.Tensor  # float V×2: crop offset as a fraction of the padding range
    partner: torch.Tensor  # int64: the position (in this round) mixed in; itself when none
    lam: torch.Tensor  # float: Mixup weight of the own image (1: not mixed)
    box: torch.Tensor  # float V×4: CutMix region (top, left, bottom, right); NaN: none

    def __len__(self) -> int:
        return int(self.rows.numel())

    def params(self, positions: torch.Tensor) -> AugmentParams:
        return AugmentParams(self.hflip[positions], self.vflip[positions],
                             self.rot90[positions], self.shift[positions])

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, torch.Tensor]) -> "ViewRecipes":
        return cls(**{f.name: d[f.name] for f in fields(cls)})


def sample_round(rows: torch.Tensor, augment: BatchAugment, mix: BatchMix,
                 generator: torch.Generator) -> ViewRecipes:
    """One view of each of ``rows``, drawn with the run's augmentation and mixing
    settings; mixing partners are any other view of the round."""
    n = rows.numel()
    p = augment.sample(n, generator)
    own = torch.arange(n)
    partner = own.clone()
    lam = torch.ones(n)
    box = torch.full((n, 4), float("nan"))
    if mix.enabled:
        partner = torch.randperm(n, generator=generator)
        partner = torch.where(torch.rand(n, generator=generator) < mix.prob, partner, own)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        lam = torch.from_numpy(np.random.default_rng(seed).beta(mix.alpha, mix.alpha, n)).float()
        lam = torch.where(partner == own, torch.ones(n), lam)
        if mix.mode == "cutmix":
            centre = torch.rand(n, 2, generator=generator)
            half = (1.0 - lam).clamp_min(0).sqrt().unsqueeze(1) / 2
            box = torch.cat([(centre - half).clamp_min(0), (centre + half).clamp_max(1)], 1)
            box[partner == own] = float("nan")
    return ViewRecipes(rows.clone(), p.hflip if augment.hflip else torch.zeros(n, dtype=torch.bool),
                       p.vflip if augment.vflip else torch.zeros(n, dtype=torch.bool),
                       p.rot90 if augment.rot90 else torch.zeros(n, dtype=torch.int64),
                       p.shift if augment.crop else torch.full((n, 2), 0.5), partner, lam, box)


def _box_mask(box: torch.Tensor, size: int) -> torch.Tensor:
    """N×1×size×size: True inside each row's box (pixels rounded as ``mix._pixels``)."""
    out = torch.zeros(box.shape[0], 1, size, size, dtype=torch.bool)
    for i, b in enumerate(box.tolist()):
        if not math.isnan(b[0]):
            top, left, bottom, right = _pixels(tuple(b), size, size)
            out[i, :, top:bottom, left:right] = True
    return out


def own_weight(recipes: ViewRecipes, positions: torch.Tensor, size: int) -> torch.Tensor:
    """The share of each view's own image at ``size`` px (the area outside a CutMix box)."""
    box = recipes.box[positions]
    inside = _box_mask(box, size).flatten(1).float().mean(1)
    return torch.where(torch.isnan(box[:, 0]), recipes.lam[positions], 1.0 - inside)


def render(recipes: ViewRecipes, positions: torch.Tensor, images: torch.Tensor,
           normalizer: Normalizer, augment: BatchAugment,
           device: torch.device | str = "cpu") -> torch.Tensor:
    """The views at ``positions`` made from ``images`` (uint8, any view's size), normalised:
    each image augmented by its recipe, then mixed with its partner's augmented view,
    the order a live batch uses."""
    def view(pos: torch.Tensor) -> torch.Tensor:
        x = normalizer(images[recipes.rows[pos]].to(device))
        return augment.apply(x, recipes.params(pos))

    x = view(positions)
    partner = recipes.partner[positions]
    if bool((partner != positions).any()):
        other = view(partner)
        box = recipes.box[positions]
        lam = recipes.lam[positions].to(x).view(-1, 1, 1, 1)
        mixed = x.mul(lam).add_(other.mul(1.0 - lam))
        inside = _box_mask(box, x.shape[-1]).to(x.device)
        cut = torch.where(inside, other, x)
        x = torch.where(torch.isnan(box[:, 0]).view(-1, 1, 1, 1).to(x.device), mixed, cut)
    return x


def mixed_targets(labels: torch.Tensor, recipes: ViewRecipes, positions: torch.Tensor,
                  size: int, num_classes: int) -> torch.Tensor:
    """Label distributions of the views (rows sum to 1), the live batch's rule per view."""
    w = own_weight(recipes, positions, size).unsqueeze(1)
    own = label_rows(labels[recipes.rows[positions]], num_classes)
    other = label_rows(labels[recipes.rows[recipes.partner[positions]]], num_classes)
    return own.mul(w).add_(other.mul(1.0 - w))


class RecipeBatches:
    """A round's views in shuffled batches, each with the teacher's stored logits: the
    training batches of a run taught from a view bank (no teacher pass)."""

    def __init__(self, recipes: ViewRecipes, logits: torch.Tensor, images: torch.Tensor,
                 labels: torch.Tensor, batch_size: int, normalizer: Normalizer,
                 augment: BatchAugment, generator: torch.Generator, num_classes: int,
                 mixing: bool, device: torch.device | str = "cpu") -> None:
        self.recipes, self.logits = recipes, logits
        self.images, self.labels = images, labels
        self.batch_size = int(batch_size)
        self.normalizer, self.augment = normalizer, augment
        self.generator, self.num_classes, self.mixing = generator, num_classes, mixing
        self.device = torch.device(device)

    def __len__(self) -> int:
        return -(-len(self.recipes) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        order = torch.randperm(len(self.recipes), generator=self.generator)
        for b in range(len(self)):
            pos = order[b * self.batch_size:(b + 1) * self.batch_size]
            x = render(self.recipes, pos, self.images, self.normalizer, self.augment, self.device)
            rows = self.recipes.rows[pos]
            targets = mixed_targets(self.labels, self.recipes, pos, x.shape[-1],
                                    self.num_classes).to(self.device) if self.mixing else None
            yield Batch(x, self.labels[rows].to(self.device), rows, targets=targets,
                        teacher_logits=self.logits[pos].to(self.device))
