"""FolderSource / ZipSource: what is refused, that refused entries are never opened, and
that the refusals reach worker processes (pickled sources)."""

from __future__ import annotations

import os
import pickle
import stat
import zipfile

import pytest

from rsdistill.data.sources import FolderSource, RefusedFile, ZipSource


@pytest.fixture
def odd_tree(tmp_path, image_bytes):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "ok.jpg").write_bytes(image_bytes())
    os.mkfifo(root / "a" / "pipe.jpg")
    os.symlink("/dev/zero", root / "a" / "zero.jpg")
    os.symlink(root / "a" / "gone.jpg", root / "a" / "broken.jpg")
    os.symlink("ok.jpg", root / "a" / "alias.jpg")
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "b")
    return root


def test_listing_classifies_without_opening(odd_tree, monkeypatch):
    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda path, *a, **k: opened.append(path) or
                        real_open(path, *a, **k))
    source = FolderSource(odd_tree)
    files = source.list_files()
    assert sorted(files) == ["a/", "a/alias.jpg", "a/broken.jpg", "a/ok.jpg", "a/pipe.jpg",
                             "a/zero.jpg"]
    assert set(source.refused) == {"a/pipe.jpg", "a/zero.jpg", "a/broken.jpg", "b/"}
    assert source.refused_folders() == {"b/": source.refused["b/"]}
    source.fingerprint(files)  # a broken link must not break the fingerprint
    for rel in ("a/pipe.jpg", "a/zero.jpg", "a/broken.jpg"):
        with pytest.raises(RefusedFile):
            source.read(rel)
    assert opened == []  # nothing was opened, least of all the FIFO
    assert source.read("a/alias.jpg") == source.read("a/ok.jpg")


def test_refusals_survive_pickling_to_workers(odd_tree):
    source = FolderSource(odd_tree)
    source.list_files()
    clone = pickle.loads(pickle.dumps(source))
    with pytest.raises(RefusedFile, match="named pipe"):
        clone.read("a/pipe.jpg")


def test_file_swapped_for_a_fifo_after_listing_is_refused_without_blocking(tmp_path,
                                                                          image_bytes):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.jpg").write_bytes(image_bytes())
    source = FolderSource(root)
    source.list_files()
    (root / "a" / "x.jpg").unlink()
    os.mkfifo(root / "a" / "x.jpg")
    with pytest.raises(RefusedFile, match="named pipe"):
        source.read("a/x.jpg")  # O_NONBLOCK: returns instead of waiting for a writer


def test_zip_refusals_reach_the_worker_copy(tmp_path, image_bytes, monkeypatch):
    path = tmp_path / "set.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a/ok.jpg", image_bytes())
        link = zipfile.ZipInfo("a/link.jpg")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    source = ZipSource(path)
    source.list_files()
    assert set(source.refused) == {"a/link.jpg"}
    worker_copy = pickle.loads(pickle.dumps(source)).opener()
    with pytest.raises(RefusedFile, match="symbolic link"):
        worker_copy.read("a/link.jpg")
    assert worker_copy.read("a/ok.jpg") == image_bytes()
