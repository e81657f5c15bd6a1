"""Finding datasets under a data root: every layout, folders and zips, class order, counts."""

from __future__ import annotations

import logging

import pytest
import torch

from rsdistill.data import load_dataset, locate
from rsdistill.data.sources import FolderSource, ZipSource, natural_key
from rsdistill.data.specs import (
    AID_COUNTS, DATASETS, EUROSAT_COUNTS, NWPU_CLASSES, UCMERCED_CLASSES,
)
from rsdistill.errors import DataError

SIZE = 8


def load(name, root, cache_dir, size=SIZE, **kw):
    kw.setdefault("workers", 1)
    kw.setdefault("progress", False)
    return load_dataset(name, root, size, cache_dir=cache_dir, **kw)


def assert_consistent(ds, built):
    """Classes, counts, files, labels and images agree with what was written."""
    assert ds.classes == built.classes
    assert len(ds) == built.total
    assert ds.images.dtype == torch.uint8
    assert tuple(ds.images.shape) == (built.total, 3, ds.image_size, ds.image_size)
    assert ds.labels.dtype == torch.int64
    assert ds.counts() == {c: len(built.files[c]) for c in built.classes}
    assert sorted(ds.files) == sorted(f for c in built.classes for f in built.files[c])
    for f, label in zip(ds.files, ds.labels.tolist()):
        assert f.split("/")[0].lower() == ds.classes[label].lower(), f
    # The fixture paints channel (class index % 3) bright: each image must carry its label's colour.
    channel_means = ds.images.float().mean(dim=(2, 3))
    assert torch.equal(channel_means.argmax(dim=1), ds.labels % 3)


# ----------------------------------------------------------------------------- UC Merced

def ucm(build_dataset, per_class=2, **kw):
    kw.setdefault("prefix", "UCMerced_LandUse/Images")
    return build_dataset(list(UCMERCED_CLASSES), per_class=per_class, ext=".tif",
                         name="{cls}{i:02d}", **kw)


def test_ucmerced_extracted_nested_layout(build_dataset, cache_dir):
    built = ucm(build_dataset)
    ds = load("ucmerced", built.data_root, cache_dir)
    assert_consistent(ds, built)
    assert ds.classes == list(UCMERCED_CLASSES)
    assert ds.files[:2] == ["agricultural/agricultural00.tif", "agricultural/agricultural01.tif"]
    assert ds.counts() == {c: 2 for c in UCMERCED_CLASSES}
    assert ds.missing_classes == []


@pytest.mark.parametrize("zip_name", ["UCMerced_LandUse.zip", "ucmerced.zip"])
def test_ucmerced_zip_official_and_dataset_name(build_dataset, cache_dir, zip_name):
    built = ucm(build_dataset, zip_name=zip_name)
    ds = load("ucmerced", built.data_root, cache_dir)
    assert_consistent(ds, built)
    assert zip_name in ds.source


def test_zip_passed_directly_as_data_root(build_dataset, cache_dir):
    built = ucm(build_dataset, zip_name="anything.zip")
    ds = load("ucmerced", built.path, cache_dir)
    assert_consistent(ds, built)


@pytest.mark.parametrize("inner", ["UCMerced_LandUse", "UCMerced_LandUse/Images"])
def test_data_root_at_dataset_folder_or_class_root(build_dataset, cache_dir, inner):
    built = ucm(build_dataset)
    ds = load("ucmerced", built.data_root / inner, cache_dir)
    assert_consistent(ds, built)


def test_ucmerced_folder_named_images_at_top(build_dataset, cache_dir):
    built = ucm(build_dataset, prefix="Images")
    assert_consistent(load("ucmerced", built.data_root, cache_dir), built)


# ----------------------------------------------------------------------------- EuroSAT

@pytest.mark.parametrize("prefix", ["EuroSAT/2750", "2750", "eurosat/2750"])
@pytest.mark.parametrize("zip_name", [None, "EuroSAT.zip", "eurosat.zip"])
def test_eurosat_layout_variants(build_dataset, cache_dir, prefix, zip_name):
    built = build_dataset(list(EUROSAT_COUNTS), per_class=2, prefix=prefix, zip_name=zip_name,
                          name="{cls}_{i}")
    ds = load("eurosat", built.data_root, cache_dir)
    assert_consistent(ds, built)
    assert ds.classes == list(EUROSAT_COUNTS)
    src, root = locate(DATASETS.get("eurosat"), built.data_root)
    assert isinstance(src, ZipSource if zip_name else FolderSource)
    assert root == (prefix if zip_name else "")


def test_official_class_order_regardless_of_folder_case_and_creation_order(build_dataset,
                                                                           cache_dir):
    # Folders written in reverse order and in lower case: the dataset still uses the
    # official names and order, and images keep their own class.
    lower = [c.lower() for c in reversed(EUROSAT_COUNTS)]
    built = build_dataset(lower, per_class=2, prefix="EuroSAT/2750")
    ds = load("eurosat", built.data_root, cache_dir)
    assert ds.classes == list(EUROSAT_COUNTS)
    for f, label in zip(ds.files, ds.labels.tolist()):
        assert f.split("/")[0] == ds.classes[label].lower()
    # The fixture's colour of class k (written order) is channel k % 3.
    written_index = {c: k for k, c in enumerate(lower)}
    expected = torch.tensor([written_index[f.split("/")[0]] % 3 for f in ds.files])
    assert torch.equal(ds.images.float().mean(dim=(2, 3)).argmax(dim=1), expected)


# ----------------------------------------------------------------------------- AID, NWPU

@pytest.mark.parametrize("zip_name", [None, "AID.zip", "aid.zip"])
def test_aid_layout(build_dataset, cache_dir, zip_name):
    built = build_dataset(list(AID_COUNTS), per_class=1, prefix="AID", zip_name=zip_name,
                          name="{cls}_{i}")
    ds = load("aid", built.data_root, cache_dir)
    assert_consistent(ds, built)
    assert ds.num_classes == 30


@pytest.mark.parametrize("zip_name", [None, "NWPU-RESISC45.zip", "nwpu_resisc45.zip"])
def test_nwpu_layout(build_dataset, cache_dir, zip_name):
    built = build_dataset(list(NWPU_CLASSES), per_class=1, prefix="NWPU-RESISC45",
                          zip_name=zip_name, name="{cls}_{i:03d}")
    ds = load("nwpu_resisc45", built.data_root, cache_dir)
    assert_consistent(ds, built)
    assert ds.num_classes == 45


# ----------------------------------------------------------------------------- generic folder

def test_generic_folder_dataset(folder_dataset, cache_dir):
    ds = load("folder", folder_dataset.data_root, cache_dir)
    assert_consistent(ds, folder_dataset)
    assert ds.classes == ["alpha", "beta", "gamma"]
    assert ds.counts() == {"alpha": 6, "beta": 6, "gamma": 6}


def test_generic_folder_classes_sorted_by_name(build_dataset, cache_dir):
    built = build_dataset(["zebra", "Apple", "mango"], per_class=2)
    ds = load("folder", built.data_root, cache_dir)
    assert ds.classes == sorted(["zebra", "Apple", "mango"])


@pytest.mark.parametrize("prefix", ["", "top", "a/b/c"])
def test_generic_folder_zip(build_dataset, cache_dir, prefix):
    built = build_dataset(["alpha", "beta", "gamma"], per_class=4, prefix=prefix,
                          zip_name="mine.zip", ext=".png")
    ds = load("folder", built.path, cache_dir)
    assert ds.classes == ["alpha", "beta", "gamma"]
    assert sorted(ds.files) == sorted(f for c in built.classes for f in built.files[c])
    assert_consistent(ds, built)


def test_folder_and_zip_of_same_content_load_identically(build_dataset, cache_dir, tmp_path):
    kw = dict(classes=["alpha", "beta", "gamma"], per_class=12, prefix="top", ext=".png",
              name="img{i}", seed=7)
    as_dir = build_dataset(**kw)
    as_zip = build_dataset(**kw, zip_name="same.zip")
    a = load("folder", as_dir.data_root, tmp_path / "c1")
    b = load("folder", as_zip.path, tmp_path / "c2")
    assert a.files == b.files
    assert torch.equal(a.labels, b.labels)
    assert torch.equal(a.images, b.images)
    # Files within a class come in natural order: img2 before img10.
    alpha = [f for f in a.files if f.startswith("alpha/")]
    assert alpha == [f"alpha/img{i}.png" for i in range(12)]


def test_png_is_decoded_losslessly(build_dataset, cache_dir):
    # 8×8 PNGs loaded at 8 px are not resized: the decoded pixels are the written ones.
    import numpy as np
    from PIL import Image

    built = build_dataset(["a", "b"], per_class=2, ext=".png", size=(8, 8))
    ds = load("folder", built.data_root, cache_dir, size=8)
    for i, f in enumerate(ds.files):
        arr = np.asarray(Image.open(built.data_root / f).convert("RGB")).transpose(2, 0, 1)
        assert torch.equal(ds.images[i], torch.from_numpy(arr.copy()))


@pytest.mark.parametrize("size", [8, 13])
def test_non_square_images_are_resized_to_square(folder_dataset, cache_dir, size):
    ds = load("folder", folder_dataset.data_root, cache_dir, size=size)
    assert tuple(ds.images.shape[1:]) == (3, size, size)
    assert ds.image_size == size


# ----------------------------------------------------------------------------- ignored files

JUNK = b"this is not an image at all"


@pytest.mark.parametrize("zip_name", [None, "junk.zip"])
def test_hidden_files_and_non_images_are_ignored(build_dataset, cache_dir, image_bytes,
                                                 zip_name):
    # The junk bytes in "._alpha_0.jpg" would fail to decode if it were not skipped.
    extra = {
        "top/alpha/._alpha_0.jpg": JUNK,
        "top/alpha/.hidden.jpg": image_bytes(),
        "top/alpha/notes.txt": JUNK,
        "top/beta/Thumbs.db": JUNK,
        "top/beta/.DS_Store": JUNK,
        "top/.cache/alpha/x.jpg": image_bytes(),
        "top/README.md": JUNK,
        "top/gamma/sub/deeper.jpg": image_bytes(),
    }
    built = build_dataset(["alpha", "beta", "gamma"], per_class=3, prefix="top",
                          zip_name=zip_name, extra=extra)
    root = built.path if zip_name else built.data_root / "top"
    ds = load("folder", root, cache_dir)
    assert ds.classes == ["alpha", "beta", "gamma"]
    assert ds.counts() == {"alpha": 3, "beta": 3, "gamma": 3}
    assert not any(".hidden" in f or "._" in f or "deeper" in f for f in ds.files)


def test_image_extensions_are_case_insensitive(build_dataset, cache_dir):
    built = build_dataset(["alpha", "beta"], per_class=2, ext=".JPG")
    assert len(load("folder", built.data_root, cache_dir)) == 4


@pytest.mark.parametrize("zip_name", [None, "mac.zip"])
def test_macos_resource_folder_is_ignored(build_dataset, cache_dir, zip_name, tmp_path):
    # An archive made on macOS carries __MACOSX/ with "._" resource forks; unzipped on
    # Linux it becomes a folder beside the class folders. It is not a class.
    extra = {"__MACOSX/alpha/._alpha_0.jpg": JUNK, "__MACOSX/._alpha": JUNK}
    built = build_dataset(["alpha", "beta"], per_class=2, zip_name=zip_name, extra=extra)
    if zip_name:
        import zipfile

        with zipfile.ZipFile(built.path, "a") as zf:
            zf.writestr("__MACOSX/", b"")
    ds = load("folder", built.path if zip_name else built.data_root, cache_dir)
    assert ds.classes == ["alpha", "beta"]
    assert len(ds) == 4


def test_non_class_folder_in_named_dataset_is_ignored_with_warning(build_dataset, cache_dir,
                                                                   image_bytes, caplog):
    extra = {"UCMerced_LandUse/Images/notaclass/x.tif": image_bytes(".tif")}
    built = ucm(build_dataset, per_class=1, extra=extra)
    with caplog.at_level(logging.WARNING, logger="rsdistill"):
        ds = load("ucmerced", built.data_root, cache_dir)
    assert ds.classes == list(UCMERCED_CLASSES)
    assert len(ds) == 21
    assert "notaclass" in caplog.text


# ----------------------------------------------------------------------------- missing classes

def test_missing_classes_error_lists_found_and_missing(build_dataset, cache_dir):
    present = [c for c in UCMERCED_CLASSES if c not in ("beach", "tenniscourt")]
    built = build_dataset(present, per_class=1, prefix="UCMerced_LandUse/Images", ext=".tif")
    with pytest.raises(DataError) as err:
        load("ucmerced", built.data_root, cache_dir)
    msg = str(err.value)
    assert "2 of 21 classes missing" in msg
    missing_part = msg.split("missing:")[1]
    assert "beach" in missing_part and "tenniscourt" in missing_part
    assert "agricultural" in msg.split("missing:")[0]  # found classes listed too
    assert "--allow-missing-classes" in msg
    assert not cache_dir.exists() or not list(cache_dir.iterdir())


def test_allow_missing_classes_uses_the_classes_found(build_dataset, cache_dir):
    present = [c for c in UCMERCED_CLASSES if c not in ("beach", "tenniscourt")]
    built = build_dataset(present, per_class=2, prefix="UCMerced_LandUse/Images", ext=".tif")
    ds = load("ucmerced", built.data_root, cache_dir, allow_missing_classes=True)
    assert ds.classes == present  # official order, gaps closed
    assert ds.missing_classes == ["beach", "tenniscourt"]
    assert ds.labels.unique().tolist() == list(range(19))
    assert len(ds) == 38


def test_natural_key_orders_numbers_numerically():
    names = ["a/x10.jpg", "a/x2.jpg", "a/x1.jpg", "a/X3.jpg"]
    assert sorted(names, key=natural_key) == ["a/x1.jpg", "a/x2.jpg", "a/X3.jpg", "a/x10.jpg"]
