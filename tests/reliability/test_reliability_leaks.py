"""Decode workers die with their parent (issue 16, item 6).

A real `rsdistill data info` with three decode workers is killed with SIGKILL while two
workers are busy and one waits on the task pipe; none of them may survive it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# The busy workers hang in their task (a decode that never ends), the third idles on the
# task pipe: the two states a worker is in when its parent is killed.
PARENT = r"""
import os, sys, time
import rsdistill.data.decode as decode
def never_ends(source, files, sizes):
    open(os.path.join(sys.argv[1], str(os.getpid())), "w").close()
    time.sleep(3600)
decode._decode_chunk_in_worker = never_ends
from rsdistill.cli.main import main
main(["data", "info", "--dataset", "folder", "--data-root", sys.argv[2], "--cache-dir",
      sys.argv[3], "--image-size", "8", "--workers", "3"])
"""


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def running(pid: int) -> bool:
    """Alive and not a zombie (a dead worker waiting to be reaped is gone for good)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(condition, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_decode_workers_die_when_their_parent_is_killed(tmp_path, kit):
    root = tmp_path / "data"
    for k, cls in enumerate(("a", "b")):
        kit.write_images(root / cls, 80, seed=k, size=8)  # 160 files: two chunks of work
    busy = tmp_path / "busy"
    busy.mkdir()
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(busy), str(root),
                               str(tmp_path / "cache")], env=kit.env(),
                              stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        assert wait_until(lambda: len(os.listdir(busy)) == 2, 300), "workers never started"
        workers = children_of(parent.pid)
        assert len(workers) >= 3, workers
        assert all(running(w) for w in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        # Generous limit for a loaded machine; the death signal acts at once.
        survivors_gone = wait_until(lambda: not any(running(w) for w in workers), 60)
        assert survivors_gone, [w for w in workers if running(w)]
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for w in workers:  # only the processes this test started
            if running(w):
                os.kill(w, signal.SIGKILL)
