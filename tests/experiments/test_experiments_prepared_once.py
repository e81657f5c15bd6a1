"""A grid cell's teacher and data are prepared once per process, not once per seed, and
never reused by another command."""

from __future__ import annotations

import pytest
import torch

from rsdistill.data.module import DataConfig
from rsdistill.experiments import procedures
from rsdistill.experiments.grid import SweepConfig
from rsdistill.experiments.pareto import ParetoConfig, run_pareto
from rsdistill.experiments.sweep import run_sweep
from rsdistill.losses import MethodConfig
from rsdistill.training.config import TrainConfig


@pytest.fixture
def prepares(monkeypatch) -> list[str]:
    """The teacher path of every real preparation, in order."""
    calls: list[str] = []
    real = procedures.prepare_teacher_and_data

    def counting(data_cfg, teacher_path, progress):
        calls.append(teacher_path)
        return real(data_cfg, teacher_path, progress)

    monkeypatch.setattr(procedures, "prepare_teacher_and_data", counting)
    return calls


def _data(tree, cache) -> DataConfig:
    return DataConfig(dataset="folder", data_root=str(tree), image_size=16,
                      cache_dir=str(cache), workers=1)


def _train() -> TrainConfig:
    return TrainConfig(model="resnet8", epochs=1, batch_size=8, device="cpu", latency_runs=2)


def test_a_pareto_cell_is_prepared_once_for_its_plan_and_once_for_its_seeds(
        prepares, tiny_teacher, tiny_tree3, tiny_cache, tmp_path):
    torch.set_num_threads(1)
    cfg = ParetoConfig(teacher=str(tiny_teacher), students=["resnet8", "resnet14"], sizes=[16],
                       seeds=3)
    rows = run_pareto(tmp_path / "grid", _data(tiny_tree3, tiny_cache), _train(), cfg,
                      progress=False, jobs=1)
    assert len(rows) == 4  # two cells, scratch and distilled each
    # Each cell: once when planned (every cell is planned before any trains), once when
    # its first seed trains; its other two seeds reuse it (was once per seed: 2 + 6).
    assert len(prepares) == 4


def test_a_second_command_prepares_afresh(prepares, tiny_teacher, tiny_tree3, tiny_cache,
                                          tmp_path):
    torch.set_num_threads(1)
    sweep = SweepConfig(teacher=str(tiny_teacher), alphas=[0.5], betas=["0"], seeds=2,
                        method=MethodConfig(temperature=4.0))
    for name in ("first", "second"):
        run_sweep(tmp_path / name, _data(tiny_tree3, tiny_cache), _train(), sweep,
                  progress=False, jobs=1)
    # One per sweep: its seeds reuse the plan's preparation, the second sweep never
    # reuses the first's (its data or teacher may have changed in between).
    assert len(prepares) == 2
