"""The decoded-tensor cache under disk faults and killed writers (issue 16, items 3 and 6).

The cache only saves time: a read-only or full cache folder leaves the data decoded in
memory with one warning; temporary files of killed writers are removed on the next run,
those of live writers never.

Read-only folders: root ignores permission bits, so as root (CI) the fault is injected
where the write starts, ``tempfile.mkstemp`` raising EROFS for that folder, which is
what a read-only mount raises there; as another user the folder is really made
read-only (chmod). A full disk is injected at the file's ``write`` call (ENOSPC after a
few bytes), so torch.save's own handling of a failing write is exercised too.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from rsdistill.io import remove_stale_temp_files


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch):
    folder = tmp_path / "ro-cache"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder, "Permission denied"
        folder.chmod(0o755)
        return
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == folder.resolve():
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    yield folder, "Read-only file system"


@pytest.fixture
def full_disk(monkeypatch, kit):
    real = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        fh = real(fd, mode, *args, **kwargs)
        return kit.FillsUp(fh, 1000) if "w" in mode else fh

    monkeypatch.setattr(os, "fdopen", fdopen)


def cache_warnings(result) -> list[str]:
    return [w for w in result.warnings if "cannot write the cache" in w]


def test_read_only_cache_dir_decodes_in_memory_with_one_warning(read_only_dir, make_tree, cli,
                                                                kit, tmp_path):
    folder, cause = read_only_dir
    root = make_tree({"a": 5, "b": 5})
    result = cli(*kit.info(root, folder, "--json"))
    assert result.rc == 0, result.err
    assert json.loads(result.out)["cache_path"] is None
    (warning,) = cache_warnings(result)
    assert str(folder) in warning and cause in warning and "--cache-dir" in warning
    assert "\n" not in warning
    assert list(folder.iterdir()) == []
    trained = cli(*kit.train(root, folder, tmp_path / "run", "--split-fractions", "40/20/40"))
    assert trained.rc == 0, trained.err
    assert len(cache_warnings(trained)) == 1
    assert (tmp_path / "run" / "metrics.json").is_file()
    assert list(folder.iterdir()) == []


def test_full_disk_while_writing_the_cache(full_disk, make_tree, cli, kit, tmp_path):
    root = make_tree({"a": 5, "b": 5})
    cache = tmp_path / "cache"
    result = cli(*kit.info(root, cache, "--json"))
    assert result.rc == 0, result.err
    assert "Traceback" not in result.err and result.err == ""
    (warning,) = cache_warnings(result)
    assert "No space left on device" in warning
    assert list(cache.iterdir()) == []  # the partial temporary file was removed
    assert json.loads(result.out)["total"] == 10


def test_full_disk_with_two_sizes_warns_once(full_disk, build_dataset, tmp_path, caplog):
    from rsdistill.data import load_dataset_sizes

    built = build_dataset(["a", "b"], per_class=3)
    views = load_dataset_sizes("folder", built.data_root, (8, 12), cache_dir=tmp_path / "c",
                               workers=1, progress=False)
    assert sorted(views) == [8, 12] and all(v.cache_path is None for v in views.values())
    assert sum("cannot write the cache" in r.getMessage() for r in caplog.records) == 1


def test_cache_dir_that_is_a_file(make_tree, cli, kit, tmp_path):
    root = make_tree({"a": 5, "b": 5})
    not_a_dir = tmp_path / "cache-file"
    not_a_dir.write_text("I am a file")
    result = cli(*kit.info(root, not_a_dir / "sub"))
    assert result.rc == 0, result.err
    assert len(cache_warnings(result)) == 1
    assert not_a_dir.read_text() == "I am a file"


# ----------------------------------------------------------------------------- leftovers

WRITER = r"""
import sys, time, torch
def stuck_save(obj, fh, *args, **kwargs):
    fh.write(b"PK\x03\x04 half a cache file")
    fh.flush()
    print("writing", flush=True)
    time.sleep(3600)
torch.save = stuck_save
from rsdistill.data import load_dataset
load_dataset("folder", sys.argv[1], 8, cache_dir=sys.argv[2], workers=1, progress=False)
"""


def start_stuck_writer(kit, root: Path, cache: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(cache)],
                            stdout=subprocess.PIPE, text=True, env=kit.env(),
                            stdin=subprocess.DEVNULL)
    ready, _, _ = select.select([proc.stdout], [], [], 300)
    assert ready and proc.stdout.readline().strip() == "writing"
    return proc


def temp_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_killed_writers_temp_file_is_removed_but_a_live_ones_is_kept(make_tree, cli, kit,
                                                                     tmp_path):
    root = make_tree({"a": 5, "b": 5})
    cache = tmp_path / "cache"
    writer = start_stuck_writer(kit, root, cache)
    try:
        (live,) = temp_files(cache)
        assert f".{writer.pid}." in live.name
        # Another run while the writer still writes: its file is left alone.
        assert cli(*kit.info(root, cache)).rc == 0
        assert live.exists()
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert live.exists()  # what kill -9 leaves behind
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        writer.stdout.close()
    assert cli(*kit.info(root, cache)).rc == 0
    assert temp_files(cache) == []
    assert len(list(cache.glob("*.pt"))) == 1


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_sweep_rules(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    dead = dead_pid()
    stale = folder / f".x.pt.{dead}.abcd1234.tmp"
    mine = folder / f".x.pt.{os.getpid()}.abcd1234.tmp"  # a writer between create and lock
    locked = folder / f".y.pt.{dead}.efgh5678.tmp"  # a writer in another pid namespace
    old_style = folder / ".z.pt.k2j4h5g6.tmp"
    young_old_style = folder / ".w.pt.a1b2c3d4.tmp"
    user_files = [folder / "notes.tmp", folder / "x.pt", folder / f".hidden.{dead}.tmp"]
    for path in (stale, mine, locked, old_style, young_old_style, *user_files):
        path.write_bytes(b"data")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(old_style, (day_ago, day_ago))
    fd = os.open(locked, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        removed = remove_stale_temp_files(folder)
        assert sorted(removed) == sorted([stale, old_style])
        assert locked.exists() and mine.exists() and young_old_style.exists()
    finally:
        os.close(fd)  # the "other namespace" writer dies: its lock goes with it
    assert remove_stale_temp_files(folder) == [locked]
    assert all(p.exists() for p in user_files)


def test_sweep_of_missing_or_unwritable_folder_never_raises(tmp_path, read_only_dir):
    assert remove_stale_temp_files(tmp_path / "missing") == []
    folder, _ = read_only_dir
    assert remove_stale_temp_files(folder) == []
