"""Predictor backends: what :func:`evaluate_model` needs from a model, whatever runs it.

A backend turns a model into a callable ``f(x: float tensor NCHW) -> logits`` for a
given precision, and says what the model costs (parameters, FLOPs). Metrics and the
timing functions only ever call ``f(x)``, so a PyTorch module and an exported model
(e.g. an onnxruntime session) are measured by the same code.
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch

from rsdistill.runtime.precision import Precision

Predictor = Callable[[torch.Tensor], torch.Tensor]


class Backend(Protocol):
    name: str

    def prepare(self, precision: Precision) -> Predictor:
        """The callable that runs the model in ``precision`` (may refuse a precision)."""

    def cost(self, image_size: int) -> dict:
        """``{"params": int, "flops": int}`` for one image."""

    def describe(self) -> dict:
        """Settings that shaped the timing figures, merged into ``metrics["inference"]``."""


class TorchBackend:
    """An ``nn.Module`` run eagerly by PyTorch (the training-time model)."""

    name = "torch"

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def prepare(self, precision: Precision) -> torch.nn.Module:
        # In place, as before backends existed: the caller's module follows the precision.
        self.model = precision.prepare_model(self.model)
        return self.model

    def cost(self, image_size: int) -> dict:
        from rsdistill.models import count_flops, count_parameters

        model = self.model.float().to(memory_format=torch.contiguous_format)
        return {"params": count_parameters(model), "flops": count_flops(model, image_size)}

    def describe(self) -> dict:
        return {"backend": self.name}


def as_backend(model: torch.nn.Module | Backend) -> Backend:
    """A backend as is; a plain module wrapped in :class:`TorchBackend`."""
    return TorchBackend(model) if isinstance(model, torch.nn.Module) else model
