"""Shared by the reliability tests: tiny datasets of real image files, and running the
real CLI in-process (to inject a fault at one system call) or as a user would, in a
subprocess, to see exactly what reaches the terminal."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_SRC = Path(__file__).resolve().parents[2] / "src"


def write_images(folder: Path, count: int, seed: int = 0, size: int = 12, ext: str = ".png",
                 start: int = 0) -> list[Path]:
    """``count`` random RGB images ``folder/img<i><ext>`` (real files, written by Pillow)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(start, start + count):
        path = folder / f"img{i}{ext}"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def make_tree(tmp_path):
    """``make_tree(per_class={"a": 3, "b": 3}, name="data") -> Path`` of class folders."""

    def make(per_class: dict[str, int], name: str = "data", ext: str = ".png") -> Path:
        root = tmp_path / name
        for k, (cls, n) in enumerate(per_class.items()):
            write_images(root / cls, n, seed=k, ext=ext)
        root.mkdir(parents=True, exist_ok=True)
        return root

    return make


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` (without following links) with its size and mtime."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_size, st.st_mtime_ns)
    return out


@dataclass
class CliResult:
    rc: int
    out: str
    err: str
    warnings: list[str]  # WARNING records logged during the command (in-process runs)

    def error_line(self, *needles: str) -> str:
        """The one line on stderr, which must be ``rsdistill: error: ...`` naming needles."""
        lines = self.err.strip("\n").split("\n")
        assert len(lines) == 1, self.err
        assert lines[0].startswith("rsdistill: error: "), self.err
        assert "Traceback" not in self.err
        for needle in needles:
            assert str(needle) in lines[0], f"{needle!r} not in {lines[0]!r}"
        return lines[0]


@pytest.fixture
def cli(capsys, caplog):
    """``cli(*argv) -> CliResult`` through rsdistill.cli.main.main in this process."""
    from rsdistill.cli.main import main

    def run(*argv) -> CliResult:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            rc = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        return CliResult(rc, out, err, warnings)

    return run


def cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_SRC), "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    env.update(extra)
    return env


@pytest.fixture
def cli_process():
    """``cli_process(*argv, timeout=120) -> CliResult``: ``python -m rsdistill.cli.main``
    in a subprocess, the user's view of stdout and stderr."""

    def run(*argv, timeout: float = 300, **env) -> CliResult:
        proc = subprocess.run([sys.executable, "-m", "rsdistill.cli.main", *map(str, argv)],
                              capture_output=True, text=True, timeout=timeout,
                              env=cli_env(**env), stdin=subprocess.DEVNULL)
        return CliResult(proc.returncode, proc.stdout, proc.stderr, [])

    return run


class Kit:
    """Helpers a test reaches through the ``kit`` fixture (conftest modules are not
    importable under --import-mode=importlib)."""

    write_images = staticmethod(write_images)
    snapshot = staticmethod(snapshot)
    env = staticmethod(cli_env)

    @staticmethod
    def info(root: Path, cache: Path, *extra) -> list:
        return ["data", "info", "--dataset", "folder", "--data-root", root, "--cache-dir",
                cache, "--image-size", "8", "--workers", "1", *extra]

    @staticmethod
    def train(root: Path, cache: Path, out: Path, *extra) -> list:
        return ["train", "--dataset", "folder", "--data-root", root, "--cache-dir", cache,
                "--image-size", "8", "--workers", "1", "--model", "resnet8", "--epochs", "1",
                "--batch-size", "4", "--latency-runs", "1", "--out", out, *extra]


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
