"""Downloads that go wrong: a connection that dies mid-file, Ctrl-C, a full disk, the
leftovers of a killed download. Local file:// URLs; faults injected at the response's
``read`` and at the file's ``write``. Whatever happens, the archive's own name holds
either nothing or a complete, verified archive."""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections import namedtuple

import pytest

import rsdistill.data.download as download_mod
from rsdistill.data.download import download_dataset, download_file
from rsdistill.data.specs import UCMERCED, UCMERCED_CLASSES, Download
from rsdistill.errors import DataError, WriteError

NAME = "UCMerced_LandUse.zip"


@pytest.fixture
def ucm_zip(build_dataset):
    return build_dataset(list(UCMERCED_CLASSES), per_class=1, prefix="UCMerced_LandUse/Images",
                         ext=".tif", name="{cls}{i:02d}", zip_name=NAME,
                         root_name="server").path


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


class Dying:
    """A response that delivers ``keep`` bytes, then fails the way ``how`` says."""

    def __init__(self, response, keep: int, how: str) -> None:
        self._response, self._left, self._how = response, keep, how
        self.headers = response.headers

    def read(self, n: int) -> bytes:
        if self._left > 0:
            block = self._response.read(min(n, self._left))
            self._left -= len(block)
            return block
        if self._how == "closed":  # what http.client returns when the server hangs up
            return b""
        raise {"reset": ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
               "incomplete": http.client.IncompleteRead(b"", 100),
               "timeout": socket.timeout("timed out"),
               "ctrl-c": KeyboardInterrupt()}[self._how]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._response.close()


@pytest.fixture
def dies_after(monkeypatch):
    """``dies_after(keep, how)``: every urlopen delivers ``keep`` bytes, then fails."""
    real = urllib.request.urlopen

    def install(keep: int, how: str) -> None:
        monkeypatch.setattr(urllib.request, "urlopen",
                            lambda url, *a, **k: Dying(real(url, *a, **k), keep, how))

    return install


@pytest.mark.parametrize("how", ["closed", "reset", "incomplete", "timeout"])
def test_a_connection_that_dies_mid_file_leaves_nothing(how, ucm_zip, tmp_path, dies_after):
    dest = tmp_path / "root" / NAME
    dies_after(ucm_zip.stat().st_size // 2, how)
    with pytest.raises(DataError) as err:
        download_file(ucm_zip.as_uri(), dest, md5=md5(ucm_zip), progress=False)
    msg = str(err.value)
    assert "stopped after" in msg and "run the command again" in msg and "\n" not in msg
    # A body cut short must not be reported as an md5 mismatch ("changed upstream").
    assert "md5" not in msg
    assert leftovers(dest.parent) == []


def test_a_short_body_is_refused_even_without_an_md5(ucm_zip, tmp_path, dies_after):
    dest = tmp_path / "root" / NAME
    dies_after(1000, "closed")
    with pytest.raises(DataError, match="stopped after"):
        download_file(ucm_zip.as_uri(), dest, progress=False)
    assert leftovers(dest.parent) == []


def test_ctrl_c_mid_file_removes_the_partial_file(ucm_zip, tmp_path, dies_after):
    dest = tmp_path / "root" / NAME
    dies_after(1000, "ctrl-c")
    with pytest.raises(KeyboardInterrupt):
        download_file(ucm_zip.as_uri(), dest, md5=md5(ucm_zip), progress=False)
    assert leftovers(dest.parent) == []


def test_a_dropped_download_keeps_the_previous_file_and_the_next_one_succeeds(
        ucm_zip, tmp_path, dies_after, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    (root / NAME).write_bytes(b"an older, broken copy")
    item = Download(ucm_zip.as_uri(), NAME, md5(ucm_zip))
    dies_after(5000, "reset")
    with pytest.raises(DataError, match="stopped after"):
        download_dataset(UCMERCED, root, progress=False, downloads=(item,))
    assert (root / NAME).read_bytes() == b"an older, broken copy"
    assert leftovers(root) == [NAME]
    monkeypatch.undo()
    assert download_dataset(UCMERCED, root, progress=False, downloads=(item,)) == root / NAME
    assert md5(root / NAME) == md5(ucm_zip) and leftovers(root) == [NAME]


class _FillsUp:
    """A file whose disk fills after ``room`` bytes."""

    def __init__(self, fh, room: int) -> None:
        self._fh, self._room = fh, room

    def write(self, data) -> int:
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._fh.write(data)


def test_a_full_disk_mid_file_is_one_error_and_leaves_nothing(ucm_zip, tmp_path, monkeypatch):
    real = download_mod.atomic_write_stream
    monkeypatch.setattr(download_mod, "atomic_write_stream",
                        lambda path, write: real(path, lambda fh: write(_FillsUp(fh, 1000))))
    dest = tmp_path / "root" / NAME
    # The write failed, not the download: the one line names the file and the cause.
    with pytest.raises(WriteError) as err:
        download_file(ucm_zip.as_uri(), dest, md5=md5(ucm_zip), progress=False)
    assert "No space left on device" in str(err.value) and str(dest) in str(err.value)
    assert leftovers(dest.parent) == []


def test_too_little_free_space_is_said_before_downloading(ucm_zip, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 100, 100))
    dest = tmp_path / "root" / NAME
    with pytest.raises(DataError) as err:
        download_file(ucm_zip.as_uri(), dest, progress=False)
    assert "not enough space" in str(err.value) and str(dest.parent) in str(err.value)
    assert leftovers(dest.parent) == []


# ----------------------------------------------------------------------------- what a failure says

def test_unreachable_mirror_names_the_official_page_and_where_to_put_the_file(tmp_path):
    root = tmp_path / "root"
    item = Download((tmp_path / "offline.zip").as_uri(), NAME, "0" * 32)
    with pytest.raises(DataError) as err:
        download_dataset(UCMERCED, root, progress=False, downloads=(item,))
    msg = str(err.value)
    assert "without network" in msg and UCMERCED.homepage in msg and str(root / NAME) in msg
    assert leftovers(root) == []


def test_md5_mismatch_names_the_official_page(ucm_zip, tmp_path):
    root = tmp_path / "root"
    item = Download(ucm_zip.as_uri(), NAME, "0" * 32)
    with pytest.raises(DataError) as err:
        download_dataset(UCMERCED, root, progress=False, downloads=(item,))
    assert "md5 mismatch" in str(err.value) and UCMERCED.homepage in str(err.value)
    assert leftovers(root) == []


# ----------------------------------------------------------------------------- leftovers

def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_next_download_removes_what_a_killed_one_left(ucm_zip, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    killed = root / f".{NAME}.{dead_pid()}.k1ll3d_x.tmp"
    killed.write_bytes(b"PK\x03\x04 first half of the archive")
    # Not ours to remove: a live writer's file, another archive's, and another program's.
    live = root / f".{NAME}.{os.getpid()}.l1ve_xyz.tmp"
    live.write_bytes(b"being written")
    other = root / f".EuroSAT.zip.{dead_pid()}.abcdefgh.tmp"
    other.write_bytes(b"another archive")
    foreign = root / ".notes.txt.abcdefgh.tmp"
    foreign.write_bytes(b"someone else's")
    download_file(ucm_zip.as_uri(), root / NAME, md5=md5(ucm_zip), progress=False)
    assert not killed.exists()
    assert live.exists() and other.exists() and foreign.exists()
    assert md5(root / NAME) == md5(ucm_zip)
