"""Data-parallel training under torchrun (two CPU processes, gloo) against one process."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from rsdistill.data.augment import BatchAugment
from rsdistill.data.loader import Normalizer, TensorBatches
from rsdistill.training.config import TrainConfig
from rsdistill.errors import ConfigError

# The launcher registers a model without BatchNorm, then runs the ordinary CLI. With
# BatchNorm each process would normalise its own shard (per-shard statistics, as with
# plain DDP), so only a BN-free model is expected to match one process to float error;
# SyncBatchNorm (--sync-bn) only syncs GPU tensors.
LAUNCHER = textwrap.dedent('''
    import torch
    from torch import nn

    from rsdistill.models.registry import MODELS


    class NoBN(nn.Module):
        def __init__(self, num_classes, image_size, in_chans):
            super().__init__()
            self.conv1 = nn.Conv2d(in_chans, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
            self.fc = nn.Linear(16, num_classes)

        def forward(self, x):
            x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
            return self.fc(x.mean((2, 3)))


    MODELS.add("nobn_test", NoBN)

    import os

    from rsdistill.training.trainer import Trainer

    # STOP_BEFORE_EPOCH=k: the process dies as epoch k starts, leaving epoch k-1's
    # checkpoint, as a preempted job would.
    stop = int(os.environ.get("STOP_BEFORE_EPOCH", "0"))
    if stop:
        calls = {"n": 0}
        original = Trainer.train_epoch

        def limited(self):
            calls["n"] += 1
            if calls["n"] == stop:
                raise SystemExit(3)
            return original(self)

        Trainer.train_epoch = limited

    from rsdistill.cli.main import main

    raise SystemExit(main())
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    return env


def _train_args(tree: Path, cache: Path, out: Path, model: str) -> list[str]:
    return ["train", "--dataset", "folder", "--data-root", str(tree), "--image-size", "16",
            "--cache-dir", str(cache), "--workers", "1", "--model", model, "--epochs", "2",
            "--batch-size", "8", "--lr", "0.05", "--device", "cpu", "--precision", "fp32",
            "--latency-runs", "2", "--out", str(out), "--no-progress"]


def _run(cmd: list[str], expect: int = 0, **env) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env={**_env(), **env}, capture_output=True, text=True, timeout=240)
    assert proc.returncode == expect, proc.stderr[-3000:]
    return proc


def _torchrun(launcher: Path, args: list[str], expect: int = 0, **env) -> subprocess.CompletedProcess:
    # torchrun makes a torchelastic_* log folder in the temp directory and leaves it
    # there: give it a temp directory of its own, removed afterwards.
    with tempfile.TemporaryDirectory(prefix="rsdistill-torchrun-") as tmp:
        return _run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                     "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
                     str(launcher), *args], expect, **{"TMPDIR": tmp, **env})


def _assert_same_weights(a: dict, b: dict) -> None:
    wa, wb = a["members"]["model"]["model"], b["members"]["model"]["model"]
    assert wa.keys() == wb.keys()
    for k in wa:
        scale = float(wa[k].abs().max()) or 1.0
        torch.testing.assert_close(wb[k], wa[k], atol=1e-5 * scale, rtol=0, msg=k)


def _files(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in run.rglob("*")
            if p.is_file() and "tensorboard" not in p.parts}


@pytest.mark.slow
def test_two_processes_match_one(tiny_tree3, tiny_cache, tmp_path):
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER)
    single, multi = tmp_path / "single", tmp_path / "multi"
    _run([sys.executable, str(launcher), *_train_args(tiny_tree3, tiny_cache, single, "nobn_test")])
    proc = _run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                 "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), str(launcher),
                 *_train_args(tiny_tree3, tiny_cache, multi, "nobn_test")])
    # One summary line: only rank 0 prints.
    assert proc.stdout.count("wrote ") == 1, proc.stdout
    # ~21 training images in batches of 8: the last batch (5) splits 2/3, so this also
    # checks that unequal shards are weighted by their size.
    a = torch.load(single / "last.pt", weights_only=True)
    b = torch.load(multi / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    assert torch.equal(a["generator"], b["generator"])
    _assert_same_weights(a, b)
    ha, hb = a["members"]["model"]["history"], b["members"]["model"]["history"]
    for ra, rb in zip(ha, hb):  # all-reduced train metrics and rank 0's validation
        assert rb["train_accuracy"] == ra["train_accuracy"]
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-5)
        assert rb["val_accuracy"] == ra["val_accuracy"]
    # One set of files, the same as a single run's (no second copy, no stray temp files);
    # model.pt holds a plain state dict.
    assert _files(multi) == _files(single)
    ma = torch.load(multi / "model.pt", weights_only=True)
    assert all(not k.startswith("module.") for k in ma["model"])
    import json
    metrics = json.loads((multi / "metrics.json").read_text())
    assert metrics["run"]["distributed"] == {"world_size": 2, "sync_bn": False}
    assert "distributed" not in json.loads((single / "metrics.json").read_text())["run"]


@pytest.mark.slow
@pytest.mark.parametrize("first_world", [2, 1])
def test_resume_under_another_world_size_matches_an_uninterrupted_run(
        tiny_tree3, tiny_cache, tmp_path, first_world):
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER)
    reference, run = tmp_path / "reference", tmp_path / "run"
    args = lambda out: _train_args(tiny_tree3, tiny_cache, out, "nobn_test")  # noqa: E731
    _run([sys.executable, str(launcher), *args(reference)])
    # Preempted as epoch 2 starts, under one world size; resumed under the other.
    first = [sys.executable, str(launcher), *args(run)]
    if first_world == 2:
        _torchrun(launcher, args(run), expect=1, STOP_BEFORE_EPOCH="2")
    else:
        _run(first, expect=3, STOP_BEFORE_EPOCH="2")
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1
    assert not (run / "metrics.json").exists()
    if first_world == 2:
        _run([*first, "--resume"])
    else:
        _torchrun(launcher, [*args(run), "--resume"])
    a = torch.load(reference / "last.pt", weights_only=True)
    b = torch.load(run / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    _assert_same_weights(a, b)


def test_shards_partition_the_global_batch():
    """Each rank's shard is its slice of the batch (and augmentation) one process draws."""
    images = torch.randint(0, 255, (21, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(21)
    aug = BatchAugment()

    def batches(shard):
        return list(TensorBatches(images, labels, torch.arange(21), 8, Normalizer(),
                                  shuffle=True, augment=aug, shard=shard,
                                  generator=torch.Generator().manual_seed(3)))

    whole = batches(None)
    parts = [batches((r, 2)) for r in range(2)]
    for b, (p0, p1) in enumerate(zip(*parts)):
        assert torch.equal(torch.cat([p0.index, p1.index]), whole[b].index)
        assert torch.equal(torch.cat([p0.images, p1.images]), whole[b].images)
        assert p0.global_size == whole[b].labels.numel()
    assert [p.labels.numel() for p in parts[0]] == [4, 4, 2]
    assert [p.labels.numel() for p in parts[1]] == [4, 4, 3]


def test_global_batch_must_divide(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ConfigError, match="divisible by the number of processes"):
        TrainConfig(batch_size=8, device="cpu").validate()
    TrainConfig(batch_size=9, device="cpu").validate()


def test_sync_bn_needs_cuda(monkeypatch):
    from rsdistill.runtime import distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    TrainConfig(batch_size=8, device="cpu").validate()  # without --sync-bn: fine
    with pytest.raises(ConfigError, match="--sync-bn needs CUDA"):
        TrainConfig(batch_size=8, device="cpu", sync_bn=True).validate()
    with pytest.raises(ConfigError, match="--sync-bn needs CUDA"):
        distributed.check_config(8, "cpu", sync_bn=True)
