"""Configs for tiny training runs on the session's tiny class-folder trees."""

from __future__ import annotations

import pytest

from rsdistill.data.module import DataConfig
from rsdistill.engine.trainer import TrainConfig


@pytest.fixture
def tiny_data(tiny_tree3, tiny_cache):
    """``tiny_data(tree=None, **overrides) -> DataConfig`` for --dataset folder at 16 px."""

    def make(tree=None, **overrides) -> DataConfig:
        cfg = dict(dataset="folder", data_root=str(tree or tiny_tree3), image_size=16,
                   cache_dir=str(tiny_cache), workers=1)
        cfg.update(overrides)
        return DataConfig(**cfg)

    return make


@pytest.fixture
def tiny_train():
    """``tiny_train(**overrides) -> TrainConfig``: resnet8, 3 epochs, batches of 8 (3 steps
    per epoch on the tiny tree's ~21 training images), bf16 + channels_last on CPU."""

    def make(**overrides) -> TrainConfig:
        cfg = dict(model="resnet8", epochs=3, batch_size=8, lr=0.05, seed=0, device="cpu",
                   precision="auto", latency_runs=3)
        cfg.update(overrides)
        return TrainConfig(**cfg)

    return make
