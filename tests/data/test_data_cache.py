"""Decode once: the first load decodes and writes the cache; later loads only read it."""

from __future__ import annotations

import errno
import os
import zipfile

import pytest
import torch

import rsdistill.data.decode as decode_mod
from rsdistill.data import load_dataset, load_dataset_sizes

SIZE = 8


def load(root, cache_dir, size=SIZE, name="folder", **kw):
    kw.setdefault("workers", 1)
    kw.setdefault("progress", False)
    return load_dataset(name, root, size, cache_dir=cache_dir, **kw)


@pytest.fixture
def decode_calls(monkeypatch):
    """Records the ``sizes`` of every decode_images call (and still decodes)."""
    calls = []
    real = decode_mod.decode_images

    def spy(source, files, sizes, *args, **kwargs):
        calls.append(tuple(sizes))
        return real(source, files, sizes, *args, **kwargs)

    monkeypatch.setattr(decode_mod, "decode_images", spy)
    return calls


def forbid_decoding(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("decode_images called although the cache should have been used")

    monkeypatch.setattr(decode_mod, "decode_images", boom)


def pt_files(cache_dir):
    return sorted(p.name for p in cache_dir.glob("*.pt")) if cache_dir.exists() else []


def test_first_load_decodes_and_writes_cache_second_only_reads(folder_dataset, cache_dir,
                                                                decode_calls, monkeypatch):
    first = load(folder_dataset.data_root, cache_dir)
    assert decode_calls == [(SIZE,)]
    assert first.cache_path is not None and first.cache_path.is_file()
    assert first.cache_path.parent == cache_dir
    assert first.cache_path.name.startswith(f"folder-{SIZE}px-")
    assert pt_files(cache_dir) == [first.cache_path.name]
    # Written atomically: no temp file left beside it.
    assert sorted(p.name for p in cache_dir.iterdir()) == [first.cache_path.name]

    forbid_decoding(monkeypatch)
    second = load(folder_dataset.data_root, cache_dir)
    assert second.cache_path == first.cache_path
    assert torch.equal(second.images, first.images)
    assert torch.equal(second.labels, first.labels)
    assert second.files == first.files
    assert second.classes == first.classes


def test_cache_is_keyed_by_dataset_name(build_dataset, cache_dir, decode_calls):
    from rsdistill.data.specs import UCMERCED_CLASSES

    built = build_dataset(list(UCMERCED_CLASSES), per_class=1, prefix="UCMerced_LandUse/Images")
    a = load(built.data_root, cache_dir, name="ucmerced")
    b = load(built.data_root / "UCMerced_LandUse/Images", cache_dir, name="folder")
    assert a.cache_path != b.cache_path
    assert a.cache_path.name.startswith("ucmerced-")
    assert b.cache_path.name.startswith("folder-")
    assert len(decode_calls) == 2


def _touch_later(path):
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def test_modified_image_invalidates_cache(folder_dataset, cache_dir, decode_calls, image_bytes):
    before = load(folder_dataset.data_root, cache_dir)
    target = folder_dataset.data_root / "alpha" / "alpha_0.jpg"
    # Same file name, other content: a class-2 colour (blue-dominant) image.
    target.write_bytes(image_bytes(".jpg", class_index=2, seed=99))
    _touch_later(target)
    after = load(folder_dataset.data_root, cache_dir)
    assert len(decode_calls) == 2
    assert after.cache_path != before.cache_path
    i = after.files.index("alpha/alpha_0.jpg")
    assert not torch.equal(after.images[i], before.images[i])
    assert after.images[i].float().mean(dim=(1, 2)).argmax() == 2
    others = [j for j in range(len(after)) if j != i]
    assert torch.equal(after.images[others], before.images[others])


def test_touched_file_invalidates_cache(folder_dataset, cache_dir, decode_calls):
    load(folder_dataset.data_root, cache_dir)
    _touch_later(folder_dataset.data_root / "beta" / "beta_1.jpg")
    load(folder_dataset.data_root, cache_dir)
    assert len(decode_calls) == 2


def test_added_file_invalidates_cache(folder_dataset, cache_dir, decode_calls, image_bytes):
    before = load(folder_dataset.data_root, cache_dir)
    (folder_dataset.data_root / "gamma" / "gamma_new.jpg").write_bytes(image_bytes(seed=5))
    after = load(folder_dataset.data_root, cache_dir)
    assert len(decode_calls) == 2
    assert len(after) == len(before) + 1
    assert "gamma/gamma_new.jpg" in after.files
    assert after.counts()["gamma"] == 7


def test_removed_file_invalidates_cache(folder_dataset, cache_dir, decode_calls):
    load(folder_dataset.data_root, cache_dir)
    (folder_dataset.data_root / "gamma" / "gamma_0.jpg").unlink()
    after = load(folder_dataset.data_root, cache_dir)
    assert len(decode_calls) == 2
    assert after.counts()["gamma"] == 5


def test_rewritten_zip_at_same_path_is_reread_in_same_process(build_dataset, cache_dir,
                                                               image_bytes, decode_calls):
    # A zip replaced in place (e.g. downloaded again) must be read afresh, not through a
    # handle kept open on the old archive.
    built = build_dataset(["alpha", "beta", "gamma"], per_class=3, zip_name="set.zip",
                          prefix="top")
    before = load(built.path, cache_dir)
    with zipfile.ZipFile(built.path, "a") as zf:
        zf.writestr("top/alpha/alpha_new.jpg", image_bytes(seed=11))
    after = load(built.path, cache_dir)
    assert len(after) == len(before) + 1
    assert "alpha/alpha_new.jpg" in after.files

    # Rewritten from scratch with other content under the same names.
    rebuilt = build_dataset(["alpha", "beta", "gamma"], per_class=3, zip_name="set.zip",
                            prefix="top", root_name=built.data_root.name, seed=123)
    assert rebuilt.path == built.path
    again = load(built.path, cache_dir)
    assert len(decode_calls) == 3
    assert again.files == before.files
    assert not torch.equal(again.images, before.images)


def test_different_sizes_use_different_cache_files(folder_dataset, cache_dir, monkeypatch):
    a = load(folder_dataset.data_root, cache_dir, size=8)
    b = load(folder_dataset.data_root, cache_dir, size=12)
    assert a.cache_path != b.cache_path
    assert "-8px-" in a.cache_path.name and "-12px-" in b.cache_path.name
    assert len(pt_files(cache_dir)) == 2
    assert b.images.shape[-1] == 12
    forbid_decoding(monkeypatch)
    assert torch.equal(load(folder_dataset.data_root, cache_dir, size=8).images, a.images)
    assert torch.equal(load(folder_dataset.data_root, cache_dir, size=12).images, b.images)


def test_multi_size_load_matches_single_size_loads(folder_dataset, tmp_path, decode_calls,
                                                   monkeypatch):
    both = load_dataset_sizes("folder", folder_dataset.data_root, sizes=(8, 16),
                              cache_dir=tmp_path / "both", workers=1, progress=False)
    assert decode_calls == [(8, 16)]  # one decode pass for both sizes
    single8 = load(folder_dataset.data_root, tmp_path / "c8", size=8)
    single16 = load(folder_dataset.data_root, tmp_path / "c16", size=16)
    assert torch.equal(both[8].images, single8.images)
    assert torch.equal(both[16].images, single16.images)
    assert torch.equal(both[8].labels, single16.labels)
    assert both[8].files == both[16].files == single8.files
    # Each size was cached on its own: single-size loads from the shared cache decode nothing.
    forbid_decoding(monkeypatch)
    assert torch.equal(load(folder_dataset.data_root, tmp_path / "both", size=16).images,
                       single16.images)


def test_multi_size_load_decodes_only_the_uncached_sizes(folder_dataset, cache_dir,
                                                         decode_calls):
    load(folder_dataset.data_root, cache_dir, size=8)
    out = load_dataset_sizes("folder", folder_dataset.data_root, sizes=(8, 12),
                             cache_dir=cache_dir, workers=1, progress=False)
    assert decode_calls == [(8,), (12,)]
    assert set(out) == {8, 12}


def test_damaged_cache_file_is_rebuilt(folder_dataset, cache_dir, decode_calls):
    first = load(folder_dataset.data_root, cache_dir)
    first.cache_path.write_bytes(b"not a torch file")
    second = load(folder_dataset.data_root, cache_dir)
    assert len(decode_calls) == 2
    assert torch.equal(second.images, first.images)
    third = load(folder_dataset.data_root, cache_dir)
    assert len(decode_calls) == 2  # the rebuilt cache is good again
    assert torch.equal(third.images, first.images)


def test_use_cache_false_writes_and_reads_nothing(folder_dataset, cache_dir, decode_calls):
    ds = load(folder_dataset.data_root, cache_dir, use_cache=False)
    load(folder_dataset.data_root, cache_dir, use_cache=False)
    assert ds.cache_path is None
    assert not cache_dir.exists() or not any(cache_dir.iterdir())
    assert len(decode_calls) == 2


def test_failed_cache_write_leaves_no_file_and_keeps_the_data(folder_dataset, cache_dir,
                                                              monkeypatch):
    reference = load(folder_dataset.data_root, cache_dir / "ref")

    def failing_save(obj, fh, *a, **k):
        fh.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    ds = load(folder_dataset.data_root, cache_dir / "full")
    # The cache is an optimisation: the data is decoded in memory, nothing half-written.
    assert ds.cache_path is None
    assert torch.equal(ds.images, reference.images)
    assert not any((cache_dir / "full").iterdir())


def test_cache_write_bug_is_not_mistaken_for_a_disk_fault(folder_dataset, cache_dir,
                                                         monkeypatch):
    def broken_save(obj, fh, *a, **k):
        raise RuntimeError("a bug, not the disk")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(RuntimeError, match="a bug"):
        load(folder_dataset.data_root, cache_dir)


def test_parallel_decode_equals_serial_decode(build_dataset, tmp_path):
    # More than one chunk (128 files) so that two worker processes really run.
    built = build_dataset(["alpha", "beta", "gamma"], per_class=50, ext=".png", size=(9, 7),
                          zip_name="many.zip")
    serial = load(built.path, tmp_path / "s", size=6, workers=1)
    parallel = load(built.path, tmp_path / "p", size=6, workers=2)
    assert len(parallel) == 150
    assert torch.equal(serial.images, parallel.images)
    assert torch.equal(serial.labels, parallel.labels)
    assert serial.files == parallel.files
