"""Parity of an exported model with its PyTorch source (fp32, eager) on real inputs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rsdistill.data.loader import Normalizer
from rsdistill.runtime.precision import resolve_precision
from rsdistill.evaluation import predict
from rsdistill.evaluation.backends import Backend

# Largest absolute logit difference accepted. fp32 graphs that only reorder or fuse
# ops (BN folded into convs) differ by ~1e-6; anything near 1e-4 is a real mismatch.
PARITY_ATOL = 1e-4
RANDOM_INPUTS = 32


@dataclass
class Parity:
    max_abs_diff: float
    mismatched: int
    count: int
    source: str  # what the inputs were, for the report

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= PARITY_ATOL and self.mismatched == 0

    def describe(self) -> str:
        return (f"parity on {self.count} {self.source}: max |Δlogit| {self.max_abs_diff:.2e} "
                f"(tolerance {PARITY_ATOL:.0e}), predicted class differs on "
                f"{self.mismatched}/{self.count}")

    def to_dict(self) -> dict:
        return {"max_abs_diff": self.max_abs_diff, "mismatched": self.mismatched,
                "count": self.count, "inputs": self.source, "tolerance": PARITY_ATOL}


def random_images(image_size: int, count: int = RANDOM_INPUTS) -> torch.Tensor:
    """Seeded uint8 noise images, for a checkpoint whose data is unknown."""
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (count, 3, image_size, image_size), generator=gen, dtype=torch.uint8)


def check_parity(model: nn.Module, exported: Backend, images: torch.Tensor,
                 normalizer: Normalizer, source: str) -> Parity:
    fp32 = resolve_precision("fp32", "cpu")
    reference = predict(model.float().cpu(), images, normalizer, fp32)
    candidate = predict(exported.prepare(fp32), images, normalizer, fp32)
    diff = (reference - candidate).abs().max()
    mismatched = int((reference.argmax(1) != candidate.argmax(1)).sum())
    # A NaN anywhere must fail, and NaN compares false with everything, so max() of
    # a diff holding NaN is mapped to inf.
    max_diff = float(diff) if torch.isfinite(diff) else float("inf")
    return Parity(max_diff, mismatched, int(images.shape[0]), source)
