"""Downloads, tested against local file:// URLs (no network)."""

from __future__ import annotations

import hashlib

import pytest
import torch

import rsdistill.data.dataset as dataset_mod
from rsdistill.data import load_dataset
from rsdistill.data.download import download_dataset, download_file, md5sum
from rsdistill.data.specs import AID, UCMERCED, UCMERCED_CLASSES, Download
from rsdistill.errors import DataError


@pytest.fixture
def ucm_zip(build_dataset):
    """A small UC Merced zip (official layout) somewhere to 'download' from."""
    return build_dataset(list(UCMERCED_CLASSES), per_class=1, prefix="UCMerced_LandUse/Images",
                         ext=".tif", name="{cls}{i:02d}", zip_name="UCMerced_LandUse.zip",
                         root_name="server").path


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_md5sum(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    assert md5sum(p) == "900150983cd24fb0d6963f7d28e17f72"


def test_download_file_with_good_md5(ucm_zip, tmp_path):
    dest = tmp_path / "downloads" / "UCMerced_LandUse.zip"
    out = download_file(ucm_zip.as_uri(), dest, md5=md5(ucm_zip), progress=False)
    assert out == dest
    assert dest.read_bytes() == ucm_zip.read_bytes()
    assert leftovers(dest.parent) == ["UCMerced_LandUse.zip"]  # no .part left


def test_download_file_without_md5(ucm_zip, tmp_path):
    dest = tmp_path / "x.zip"
    download_file(ucm_zip.as_uri(), dest, progress=False)
    assert dest.read_bytes() == ucm_zip.read_bytes()


def test_download_file_with_bad_md5_keeps_nothing(ucm_zip, tmp_path):
    dest = tmp_path / "downloads" / "UCMerced_LandUse.zip"
    with pytest.raises(DataError) as err:
        download_file(ucm_zip.as_uri(), dest, md5="0" * 32, progress=False)
    msg = str(err.value)
    assert "md5 mismatch" in msg and "0" * 32 in msg and md5(ucm_zip) in msg
    assert not dest.exists()
    assert leftovers(dest.parent) == []  # not even the .part file


def test_download_file_bad_md5_does_not_clobber_existing_file(ucm_zip, tmp_path):
    dest = tmp_path / "root" / "UCMerced_LandUse.zip"
    dest.parent.mkdir()
    dest.write_bytes(b"previous content")
    with pytest.raises(DataError):
        download_file(ucm_zip.as_uri(), dest, md5="0" * 32, progress=False)
    assert dest.read_bytes() == b"previous content"
    assert leftovers(dest.parent) == ["UCMerced_LandUse.zip"]


def test_download_unreachable_url_says_where_to_put_the_archive(tmp_path):
    dest = tmp_path / "root" / "EuroSAT.zip"
    with pytest.raises(DataError) as err:
        download_file((tmp_path / "no-such-file.zip").as_uri(), dest, progress=False)
    assert str(dest) in str(err.value)
    assert "without network" in str(err.value)
    assert leftovers(dest.parent) == []


def test_download_dataset_from_file_url_then_load(ucm_zip, tmp_path):
    root = tmp_path / "data"
    item = Download(ucm_zip.as_uri(), "UCMerced_LandUse.zip", md5(ucm_zip))
    path = download_dataset(UCMERCED, root, progress=False, downloads=(item,))
    assert path == root / "UCMerced_LandUse.zip"
    ds = load_dataset("ucmerced", root, 8, cache_dir=tmp_path / "cache", workers=1,
                      progress=False)
    assert len(ds) == 21 and ds.classes == list(UCMERCED_CLASSES)


def test_download_dataset_tries_the_next_mirror(ucm_zip, tmp_path):
    root = tmp_path / "data"
    items = (Download((tmp_path / "gone.zip").as_uri(), "UCMerced_LandUse.zip", md5(ucm_zip)),
             Download(ucm_zip.as_uri(), "UCMerced_LandUse.zip", md5(ucm_zip)))
    assert download_dataset(UCMERCED, root, progress=False, downloads=items).is_file()


def test_download_dataset_keeps_a_verified_existing_archive(ucm_zip, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "UCMerced_LandUse.zip").write_bytes(ucm_zip.read_bytes())
    # The URL does not exist: succeeding proves nothing was downloaded.
    item = Download((tmp_path / "nowhere.zip").as_uri(), "UCMerced_LandUse.zip", md5(ucm_zip))
    assert download_dataset(UCMERCED, root, progress=False, downloads=(item,)) == \
        root / "UCMerced_LandUse.zip"


def test_download_dataset_replaces_an_archive_with_wrong_md5(ucm_zip, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "UCMerced_LandUse.zip").write_bytes(b"stale partial download")
    item = Download(ucm_zip.as_uri(), "UCMerced_LandUse.zip", md5(ucm_zip))
    download_dataset(UCMERCED, root, progress=False, downloads=(item,))
    assert md5(root / "UCMerced_LandUse.zip") == md5(ucm_zip)


def test_load_with_download_fetches_missing_dataset(ucm_zip, tmp_path, monkeypatch):
    real = dataset_mod.download_dataset
    calls = []

    def local_mirror(spec, root, progress=True, downloads=None):
        calls.append(spec.name)
        item = Download(ucm_zip.as_uri(), "UCMerced_LandUse.zip", md5(ucm_zip))
        return real(spec, root, progress=progress, downloads=(item,))

    monkeypatch.setattr(dataset_mod, "download_dataset", local_mirror)
    root = tmp_path / "data"
    root.mkdir()
    ds = load_dataset("ucmerced", root, 8, cache_dir=tmp_path / "cache", download=True,
                      workers=1, progress=False)
    assert calls == ["ucmerced"]
    assert len(ds) == 21
    assert (root / "UCMerced_LandUse.zip").is_file()
    # Present now: a second load with --download fetches nothing.
    again = load_dataset("ucmerced", root, 8, cache_dir=tmp_path / "cache", download=True,
                         workers=1, progress=False)
    assert calls == ["ucmerced"]
    assert torch.equal(again.images, ds.images)


def test_load_without_download_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset_mod, "download_dataset",
                        lambda *a, **k: pytest.fail("download attempted"))
    root = tmp_path / "data"
    root.mkdir()
    with pytest.raises(DataError, match="--download"):
        load_dataset("ucmerced", root, 8, cache_dir=tmp_path / "cache", progress=False)


def test_aid_has_no_public_url(tmp_path):
    root = tmp_path / "data"
    with pytest.raises(DataError) as err:
        download_dataset(AID, root, progress=False)
    msg = str(err.value)
    assert "no public" in msg and "AID.zip" in msg and str(root) in msg
    assert not root.exists() or leftovers(root) == []


@pytest.mark.parametrize("download", [False, True])
def test_loading_missing_aid_explains_there_is_no_public_url(tmp_path, download):
    root = tmp_path / "data"
    root.mkdir()
    with pytest.raises(DataError) as err:
        load_dataset("aid", root, 8, cache_dir=tmp_path / "cache", download=download,
                     progress=False)
    assert "no public" in str(err.value)
    assert leftovers(root) == []
