"""The real dataset zips (../shared/datasets or $RSDISTILL_TEST_DATA), read in place.

Each dataset is decoded at most once per session: loads go through one session
cache directory and are memoised.
"""

from __future__ import annotations

import pytest
import torch

import rsdistill.data.decode as decode_mod
from rsdistill.data import DataConfig, load_dataset, prepare_data, stratified_split
from rsdistill.data.specs import AID_COUNTS, EUROSAT_COUNTS, NWPU_CLASSES, UCMERCED_CLASSES
from rsdistill.data.splits import split_from_files
from rsdistill.errors import DataError

pytestmark = pytest.mark.realdata

SIZE = 32
ZIPS = {"ucmerced": "ucmerced.zip", "eurosat": "eurosat.zip", "aid": "aid.zip",
        "nwpu_resisc45": "nwpu_resisc45.zip"}
NWPU_SUBSET = ["beach", "commercial_area", "desert", "forest", "industrial_area", "island",
               "lake", "mountain", "river", "wetland"]


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("real-cache")


@pytest.fixture(scope="session")
def real(shared_datasets, real_cache):
    loaded = {}

    def get(name):
        if not (shared_datasets / ZIPS[name]).is_file():
            pytest.skip(f"{ZIPS[name]} not in {shared_datasets}")
        if name not in loaded:
            loaded[name] = load_dataset(name, shared_datasets, SIZE, cache_dir=real_cache,
                                        allow_missing_classes=name == "nwpu_resisc45",
                                        progress=False)
        return loaded[name]

    return get


def check_tensor(ds, total):
    assert ds.images.dtype == torch.uint8
    assert tuple(ds.images.shape) == (total, 3, SIZE, SIZE)
    assert ds.labels.shape == (total,)
    assert len(ds.files) == total
    assert ds.skipped == []
    # Real images: no all-black placeholders from failed decodes.
    assert (ds.images.flatten(1).amax(dim=1) > 0).all()
    for f, label in zip(ds.files[::97], ds.labels[::97].tolist()):
        assert f.split("/")[0] == ds.classes[label]


def test_ucmerced(real):
    ds = real("ucmerced")
    check_tensor(ds, 2100)
    assert ds.classes == list(UCMERCED_CLASSES)
    assert ds.counts() == {c: 100 for c in UCMERCED_CLASSES}
    assert ds.files[0] == "agricultural/agricultural00.jpg"
    split = stratified_split(ds.labels, (0.6, 0.2, 0.2), seed=0)
    assert split.sizes() == {"train": 1260, "val": 420, "test": 420}


def test_ucmerced_prepare_data_uses_the_cache(real, shared_datasets, real_cache, monkeypatch):
    ds = real("ucmerced")
    monkeypatch.setattr(decode_mod, "decode_images",
                        lambda *a, **k: pytest.fail("decoded again despite the cache"))
    cfg = DataConfig(dataset="ucmerced", data_root=str(shared_datasets), image_size=SIZE,
                     cache_dir=str(real_cache), standardize=True)
    data = prepare_data(cfg, progress=False)
    assert torch.equal(data.dataset.images, ds.images)
    info = data.describe()
    assert info["total"] == 2100 and info["splits"] == {"train": 1260, "val": 420, "test": 420}
    x = next(iter(data.batches("train", 64, train=True)))
    assert x.images.shape == (64, 3, SIZE, SIZE)


def test_ucmerced_torchgeo_tif_split_names_match_jpg_files(real, tmp_path):
    ds = real("ucmerced")
    names = [f.split("/")[1].replace(".jpg", ".tif") for f in ds.files]
    lists = {"train": names[0::5] + names[1::5] + names[2::5], "val": names[3::5],
             "test": names[4::5]}
    paths = {}
    for s, lines in lists.items():
        paths[s] = tmp_path / f"uc_merced-{s}.txt"
        paths[s].write_text("\n".join(lines) + "\n")
    split = split_from_files(ds.files, paths)
    assert split.sizes() == {"train": 1260, "val": 420, "test": 420}
    assert split.test.tolist() == list(range(4, 2100, 5))


def test_eurosat(real):
    ds = real("eurosat")
    check_tensor(ds, 27000)
    assert ds.classes == ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway",
                          "Industrial", "Pasture", "PermanentCrop", "Residential", "River",
                          "SeaLake"]
    assert list(ds.counts().values()) == [3000, 3000, 3000, 2500, 2500, 2000, 2500, 3000,
                                          2500, 3000]
    assert ds.counts() == EUROSAT_COUNTS


def test_aid(real):
    ds = real("aid")
    check_tensor(ds, 10000)
    assert ds.num_classes == 30
    assert ds.classes == list(AID_COUNTS)
    assert ds.counts() == AID_COUNTS


def test_nwpu_subset_requires_allow_missing_classes(shared_datasets, real_cache):
    if not (shared_datasets / ZIPS["nwpu_resisc45"]).is_file():
        pytest.skip("nwpu_resisc45.zip absent")
    before = set(real_cache.iterdir())
    with pytest.raises(DataError) as err:
        load_dataset("nwpu_resisc45", shared_datasets, SIZE, cache_dir=real_cache,
                     progress=False)
    msg = str(err.value)
    assert "35 of 45 classes missing" in msg
    missing = msg.split("missing:")[1]
    for cls in ("airplane", "thermal_power_station", "tennis_court"):
        assert cls in missing
    assert "beach" not in missing
    assert "--allow-missing-classes" in msg
    assert set(real_cache.iterdir()) == before  # nothing cached


def test_nwpu_subset_with_allow_missing_classes(real):
    ds = real("nwpu_resisc45")
    check_tensor(ds, 7000)
    assert ds.classes == NWPU_SUBSET
    assert ds.counts() == {c: 700 for c in NWPU_SUBSET}
    assert ds.missing_classes == [c for c in NWPU_CLASSES if c not in NWPU_SUBSET]
