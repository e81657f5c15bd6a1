"""Optimisers and learning-rate schedules, looked up by name."""

from __future__ import annotations

import math
from typing import Callable, Iterable

import torch

from rsdistill.registry import Registry

OPTIMIZERS: Registry[Callable] = Registry("optimizer")
SCHEDULES: Registry[Callable[[int, int, int], Callable[[int], float]]] = Registry("schedule")

@OPTIMIZERS.register("sgd")
def _sgd(params: Iterable, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                           nesterov=momentum > 0, foreach=True)


@OPTIMIZERS.register("adamw")
def _adamw(params: Iterable, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def _warmup(step: int, warmup: int) -> float:
    return (step + 1) / warmup if step < warmup else 1.0


@SCHEDULES.register("cosine")
def _cosine(total: int, warmup: int, _unused: int = 0) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return _warmup(step, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


@SCHEDULES.register("onecycle")
def _onecycle(total: int, warmup: int, _unused: int = 0) -> Callable[[int], float]:
    # Linear ramp up over the first 30% (or the given warm-up), then cosine down to ~0.
    peak = warmup or max(1, int(0.3 * total))

    def factor(step: int) -> float:
        if step < peak:
            return 0.04 + 0.96 * (step + 1) / peak
        progress = (step - peak) / max(1, total - peak)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


@SCHEDULES.register("constant")
def _constant(total: int, warmup: int, _unused: int = 0) -> Callable[[int], float]:
    return lambda step: _warmup(step, warmup) if warmup else 1.0


def build_optimizer(name: str, params: Iterable, lr: float, weight_decay: float,
                    momentum: float) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(name)(params, lr, weight_decay, momentum)


def build_scheduler(name: str, optimizer: torch.optim.Optimizer, total_steps: int,
                    warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, SCHEDULES.get(name)(total_steps, warmup_steps))
