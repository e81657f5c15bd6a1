"""Shared by the reliability tests: tiny datasets of real image files, and running the
real CLI in-process (to inject a fault at one system call) or as a user would, in a
subprocess, to see exactly what reaches the terminal."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import tempfile
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


class FillsUp:
    """A file whose disk fills after ``room`` bytes: its ``write`` raises ENOSPC, as the
    kernel's does (torch.save then raises its own RuntimeError around it)."""

    def __init__(self, fh, room: int) -> None:
        self._fh, self._room = fh, room

    def write(self, data) -> int:
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


def _under(path, folder: Path) -> bool:
    try:
        Path(os.path.abspath(path)).relative_to(os.path.abspath(folder))
        return True
    except (TypeError, ValueError):
        return False


def fill_disk(monkeypatch, target: str, nth: int = 1, room: int = 1000) -> dict:
    """The disk is full from the ``nth`` atomic write of a file named ``target`` on: that
    write fails after ``room`` bytes. Returns ``{"n": writes of target begun}``."""
    real_mkstemp, real_fdopen = tempfile.mkstemp, os.fdopen
    doomed: set[int] = set()
    seen = {"n": 0}

    def mkstemp(*args, prefix=None, **kwargs):
        fd, path = real_mkstemp(*args, prefix=prefix, **kwargs)
        if prefix is not None and prefix.startswith(f".{target}."):
            seen["n"] += 1
            if seen["n"] >= nth:
                doomed.add(fd)
        return fd, path

    def fdopen(fd, mode="r", *args, **kwargs):
        fh = real_fdopen(fd, mode, *args, **kwargs)
        if fd in doomed:
            doomed.discard(fd)
            return FillsUp(fh, room)
        return fh

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(os, "fdopen", fdopen)
    return seen


def read_only(monkeypatch, folder: Path, from_write: int = 1) -> None:
    """``folder`` behaves as on a read-only mount (root ignores permission bits, so the
    calls that would fail raise EROFS themselves). ``from_write > 1``: it becomes
    read-only mid-run, at that atomic write into it."""
    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    real_mkstemp = tempfile.mkstemp
    count = {"n": 0}

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and _under(dir, folder):
            count["n"] += 1
            if count["n"] >= from_write:
                refuse(dir)
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    if from_write > 1:
        return
    real_open, real_mkdir = os.open, os.mkdir

    def open_(path, flags, *args, **kwargs):
        if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR) and _under(path, folder):
            refuse(path)
        return real_open(path, flags, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        if _under(path, folder) and not os.path.isdir(path):
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "mkdir", mkdir)


# One epoch of resnet8 on the tiny trees at 16 px (tests/conftest.py's tiny_tree3).
TINY_TRAIN = ["--epochs", "1", "--batch-size", "8", "--latency-runs", "1", "--no-progress"]


def tiny_data(tree: Path, cache: Path) -> list[str]:
    return ["--dataset", "folder", "--data-root", str(tree), "--cache-dir", str(cache),
            "--image-size", "16", "--workers", "1"]


class Kit:
    """Helpers a test reaches through the ``kit`` fixture (conftest modules are not
    importable under --import-mode=importlib)."""

    FillsUp = FillsUp
    fill_disk = staticmethod(fill_disk)
    read_only = staticmethod(read_only)

    write_images = staticmethod(write_images)
    tiny_data = staticmethod(tiny_data)
    TINY_TRAIN = TINY_TRAIN
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


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, tiny_tree3, tiny_cache) -> Path:
    """A finished one-epoch resnet8 run on ``tiny_tree3``, shared read-only (copy it to
    change it): a teacher, a run to evaluate or resume."""
    import torch

    from rsdistill.cli.main import main

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("finished-run") / "teacher"
    assert main(["train", *tiny_data(tiny_tree3, tiny_cache), "--model", "resnet8",
                 *TINY_TRAIN, "--out", str(out)]) == 0
    return out


@pytest.fixture
def lock_holder():
    """``lock_holder(directory) -> pid``: another process holding ``directory``'s run
    lock (through rsdistill's own ``run_dir_lock``) until the test ends."""
    procs = []
    code = ("import sys, time\n"
            "from rsdistill.runtime.locks import run_dir_lock\n"
            "with run_dir_lock(sys.argv[1]):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(600)\n")

    def hold(directory: Path) -> int:
        proc = subprocess.Popen([sys.executable, "-c", code, str(directory)],
                                stdout=subprocess.PIPE, text=True, env=cli_env())
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc.pid

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()
