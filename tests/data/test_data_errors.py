"""Bad input: one clear DataError naming the file or folder, and no cache written."""

from __future__ import annotations

import zipfile

import pytest
import torch

from rsdistill.data import load_dataset, prepare_data, DataConfig
from rsdistill.data.specs import UCMERCED_CLASSES
from rsdistill.errors import ConfigError, DataError, RsdistillError


def load(root, cache_dir, size=8, name="folder", **kw):
    kw.setdefault("workers", 1)
    kw.setdefault("progress", False)
    return load_dataset(name, root, size, cache_dir=cache_dir, **kw)


def assert_no_cache(cache_dir):
    """Nothing cached, not even a temp file."""
    assert not cache_dir.exists() or list(cache_dir.iterdir()) == []


def raises_data_error(fn, *names):
    with pytest.raises(DataError) as err:
        fn()
    msg = str(err.value)
    assert "\n" not in msg, msg
    for name in names:
        assert str(name) in msg, f"{name!r} not in {msg!r}"
    return msg


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


BAD_CONTENT = {
    "truncated_jpeg": lambda good: truncated(good(".jpg")),
    "truncated_png": lambda good: truncated(good(".png")),
    "truncated_tiff": lambda good: truncated(good(".tif")),
    "text_named_jpg": lambda good: b"<html>404 not found</html>",
    "empty_file": lambda good: b"",
}


@pytest.mark.parametrize("zip_name", [None, "set.zip"])
@pytest.mark.parametrize("kind", sorted(BAD_CONTENT))
def test_corrupt_image_names_the_file_and_writes_no_cache(build_dataset, cache_dir,
                                                          image_bytes, kind, zip_name):
    ext = {"truncated_png": ".png", "truncated_tiff": ".tif"}.get(kind, ".jpg")
    bad = {f"beta/broken{ext}": BAD_CONTENT[kind](image_bytes)}
    built = build_dataset(["alpha", "beta", "gamma"], per_class=3, zip_name=zip_name, extra=bad)
    msg = raises_data_error(lambda: load(built.path if zip_name else built.data_root, cache_dir),
                            f"beta/broken{ext}", "--skip-corrupt")
    assert "(and" not in msg  # exactly one bad file
    assert_no_cache(cache_dir)


def test_several_corrupt_images_are_counted_in_the_error(build_dataset, cache_dir):
    bad = {"alpha/bad1.jpg": b"x", "gamma/bad2.jpg": b"y"}
    built = build_dataset(["alpha", "beta", "gamma"], per_class=2, extra=bad)
    raises_data_error(lambda: load(built.data_root, cache_dir), "alpha/bad1.jpg", "1 more")
    assert_no_cache(cache_dir)


def test_skip_corrupt_skips_and_counts(build_dataset, cache_dir, image_bytes, monkeypatch):
    bad = {"alpha/bad1.jpg": truncated(image_bytes()), "gamma/bad2.png": b"not a png"}
    built = build_dataset(["alpha", "beta", "gamma"], per_class=4, extra=bad)
    ds = load(built.data_root, cache_dir, skip_corrupt=True)
    assert sorted(ds.skipped) == ["alpha/bad1.jpg", "gamma/bad2.png"]
    assert len(ds) == 12
    assert ds.counts() == {"alpha": 4, "beta": 4, "gamma": 4}
    assert not any("bad" in f for f in ds.files)
    # Labels still line up with the images that were kept.
    assert torch.equal(ds.images.float().mean(dim=(2, 3)).argmax(dim=1), ds.labels % 3)
    for f, label in zip(ds.files, ds.labels.tolist()):
        assert f.startswith(ds.classes[label] + "/")
    # The cached result remembers what was skipped.
    import rsdistill.data.decode as decode_mod

    monkeypatch.setattr(decode_mod, "decode_images", lambda *a, **k: 1 / 0)
    again = load(built.data_root, cache_dir, skip_corrupt=True)
    assert sorted(again.skipped) == sorted(ds.skipped)
    assert torch.equal(again.images, ds.images)


def test_skip_corrupt_is_reported_by_prepare_data(build_dataset, cache_dir):
    built = build_dataset(["alpha", "beta"], per_class=5, extra={"beta/bad.jpg": b"junk"})
    cfg = DataConfig(dataset="folder", data_root=str(built.data_root), image_size=8,
                     cache_dir=str(cache_dir), skip_corrupt=True, workers=1)
    info = prepare_data(cfg, progress=False).describe()
    assert info["skipped_corrupt"] == 1
    assert info["total"] == 10


def test_corrupt_zip_member_names_the_member(build_dataset, cache_dir):
    built = build_dataset(["alpha", "beta"], per_class=2, ext=".png", zip_name="set.zip")
    with zipfile.ZipFile(built.path) as zf:
        info = zf.getinfo("beta/beta_1.png")
    data = bytearray(built.path.read_bytes())
    # Flip one byte inside the member's data (after its local header): CRC mismatch.
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    built.path.write_bytes(bytes(data))
    raises_data_error(lambda: load(built.path, cache_dir), "beta/beta_1.png")
    assert_no_cache(cache_dir)


def test_empty_class_folder(build_dataset, cache_dir):
    built = build_dataset(["alpha", "beta"], per_class=2)
    (built.data_root / "delta").mkdir()
    raises_data_error(lambda: load(built.data_root, cache_dir), "delta", "no images")
    assert_no_cache(cache_dir)


def test_class_folder_with_only_non_images_is_empty(build_dataset, cache_dir):
    built = build_dataset(["alpha", "beta"], per_class=2, extra={"delta/readme.txt": b"hi"})
    raises_data_error(lambda: load(built.data_root, cache_dir), "delta")
    assert_no_cache(cache_dir)


def test_empty_class_folder_in_named_dataset(build_dataset, cache_dir):
    present = [c for c in UCMERCED_CLASSES if c != "harbor"]
    built = build_dataset(present, per_class=1, prefix="UCMerced_LandUse/Images", ext=".tif")
    (built.data_root / "UCMerced_LandUse/Images/harbor").mkdir()
    raises_data_error(lambda: load(built.data_root, cache_dir, name="ucmerced"), "harbor")
    assert_no_cache(cache_dir)


def test_empty_class_folder_in_zip(build_dataset, cache_dir):
    built = build_dataset(["alpha", "beta"], per_class=2, zip_name="set.zip", prefix="top")
    with zipfile.ZipFile(built.path, "a") as zf:
        zf.writestr("top/delta/", b"")
    raises_data_error(lambda: load(built.path, cache_dir), "delta")
    assert_no_cache(cache_dir)


def test_unknown_layout_zip_for_named_dataset(build_dataset, cache_dir):
    built = build_dataset(["agricultural", "airplane"], per_class=1, prefix="stuff/deeper/here",
                          zip_name="ucmerced.zip")
    msg = raises_data_error(lambda: load(built.data_root, cache_dir, name="ucmerced"),
                            built.path, "unknown layout", "UCMerced_LandUse/Images/")
    assert "stuff" in msg  # what was found instead
    assert_no_cache(cache_dir)


def test_zip_without_images_for_folder_dataset(tmp_path, cache_dir):
    path = tmp_path / "docs.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a/readme.txt", "hello")
        zf.writestr("b/notes.md", "hello")
    raises_data_error(lambda: load(path, cache_dir), path, "no class folders")
    assert_no_cache(cache_dir)


def test_folder_without_class_folders(tmp_path, cache_dir, image_bytes):
    root = tmp_path / "flat"
    root.mkdir()
    (root / "lonely.jpg").write_bytes(image_bytes())
    raises_data_error(lambda: load(root, cache_dir), root)
    assert_no_cache(cache_dir)


@pytest.mark.parametrize("name, zip_name", [("ucmerced", "ucmerced.zip"),
                                            ("eurosat", "EuroSAT.zip"),
                                            ("folder", "x.zip")])
def test_file_named_zip_that_is_not_a_zip(tmp_path, cache_dir, name, zip_name):
    root = tmp_path / "root"
    root.mkdir()
    fake = root / zip_name
    fake.write_bytes(b"<html>this is an error page, not an archive</html>" * 10)
    target = fake if name == "folder" else root
    raises_data_error(lambda: load(target, cache_dir, name=name), fake, "not a zip")
    assert_no_cache(cache_dir)


@pytest.mark.parametrize("name", ["folder", "ucmerced", "aid"])
def test_missing_data_root(tmp_path, cache_dir, name):
    missing = tmp_path / "does" / "not" / "exist"
    raises_data_error(lambda: load(missing, cache_dir, name=name), missing, "does not exist",
                      "--data-root")
    assert_no_cache(cache_dir)


def test_dataset_not_found_says_where_to_put_it(tmp_path, cache_dir):
    root = tmp_path / "empty"
    root.mkdir()
    msg = raises_data_error(lambda: load(root, cache_dir, name="eurosat"),
                            root / "EuroSAT.zip", "--download")
    assert "EuroSAT/2750" in msg
    assert_no_cache(cache_dir)


@pytest.mark.parametrize("entry", ["../evil.jpg", "/abs.jpg", "top/../../evil.jpg"])
@pytest.mark.parametrize("name, zip_name, prefix", [("folder", "x.zip", "top"),
                                                    ("ucmerced", "ucmerced.zip",
                                                     "UCMerced_LandUse/Images")])
def test_zip_slip_entries_are_rejected(build_dataset, cache_dir, image_bytes, entry, name,
                                       zip_name, prefix):
    classes = list(UCMERCED_CLASSES) if name == "ucmerced" else ["alpha", "beta"]
    built = build_dataset(classes, per_class=1, prefix=prefix, zip_name=zip_name,
                          extra={entry: image_bytes()})
    target = built.path if name == "folder" else built.data_root
    raises_data_error(lambda: load(target, cache_dir, name=name), "unsafe entry", entry)
    assert not (built.data_root.parent / "evil.jpg").exists()
    assert_no_cache(cache_dir)


@pytest.mark.parametrize("size", [0, -3, 5000])
def test_invalid_image_size(folder_dataset, cache_dir, size):
    raises_data_error(lambda: load(folder_dataset.data_root, cache_dir, size=size), str(size))


def test_unknown_dataset_name(folder_dataset, cache_dir):
    with pytest.raises(ConfigError) as err:
        load(folder_dataset.data_root, cache_dir, name="imagenet")
    assert "imagenet" in str(err.value) and "ucmerced" in str(err.value)
    assert isinstance(err.value, RsdistillError)
