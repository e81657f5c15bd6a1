"""Stratified seeded splits and torchgeo-style split files."""

from __future__ import annotations

import pytest
import torch

from rsdistill.data import DataConfig, prepare_data, stratified_split
from rsdistill.data.splits import (
    SPLITS, find_split_files, parse_fractions, split_from_files,
)
from rsdistill.errors import DataError


def make_labels(counts, seed=0):
    """Labels with ``counts[c]`` items of class c, interleaved (not grouped by class)."""
    labels = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(counts)])
    return labels[torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(seed))]


def assert_partition(split, n):
    parts = [split[s] for s in SPLITS]
    for p in parts:
        assert p.dtype == torch.int64
        assert torch.equal(p, torch.sort(p).values)
        assert p.unique().numel() == p.numel()
    union = torch.cat(parts)
    assert union.numel() == n, "indices lost or duplicated across splits"
    assert torch.equal(torch.sort(union).values, torch.arange(n))


def test_ucmerced_sized_split_gives_1260_420_420():
    labels = make_labels([100] * 21)
    split = stratified_split(labels, (0.6, 0.2, 0.2), seed=0)
    assert split.sizes() == {"train": 1260, "val": 420, "test": 420}
    assert_partition(split, 2100)
    for name, per_class in (("train", 60), ("val", 20), ("test", 20)):
        assert torch.bincount(labels[split[name]], minlength=21).tolist() == [per_class] * 21


@pytest.mark.parametrize("fractions", [(0.6, 0.2, 0.2), (0.7, 0.1, 0.2), (0.8, 0.0, 0.2)])
def test_split_is_stratified_per_class(fractions):
    counts = [10, 23, 40, 7, 55]
    labels = make_labels(counts)
    split = stratified_split(labels, fractions, seed=3)
    assert_partition(split, sum(counts))
    for c, n in enumerate(counts):
        n_train = torch.sum(labels[split.train] == c).item()
        n_val = torch.sum(labels[split.val] == c).item()
        n_test = torch.sum(labels[split.test] == c).item()
        assert n_train + n_val + n_test == n
        # Each class is cut in proportion (to within rounding).
        assert abs(n_train - n * fractions[0]) <= 0.5 + 1e-9
        assert abs(n_val - n * fractions[1]) <= 0.5 + 1e-9
        assert abs(n_test - n * fractions[2]) <= 1.0 + 1e-9


def test_eurosat_sized_split_is_proportional():
    from rsdistill.data.specs import EUROSAT_COUNTS

    counts = list(EUROSAT_COUNTS.values())
    labels = make_labels(counts)
    split = stratified_split(labels, parse_fractions("60/20/20"), seed=0)
    assert split.sizes() == {"train": 16200, "val": 5400, "test": 5400}
    for c, n in enumerate(counts):
        assert torch.sum(labels[split.train] == c).item() == int(n * 0.6)


def test_same_seed_same_split_different_seed_different_split():
    labels = make_labels([30, 30, 30])
    a = stratified_split(labels, (0.6, 0.2, 0.2), seed=1)
    b = stratified_split(labels, (0.6, 0.2, 0.2), seed=1)
    c = stratified_split(labels, (0.6, 0.2, 0.2), seed=2)
    for s in SPLITS:
        assert torch.equal(a[s], b[s])
    assert not all(torch.equal(a[s], c[s]) for s in SPLITS)
    assert c.sizes() == a.sizes()


def test_split_does_not_depend_on_global_rng():
    labels = make_labels([20, 20])
    torch.manual_seed(0)
    a = stratified_split(labels, (0.6, 0.2, 0.2), seed=5)
    torch.manual_seed(12345)
    torch.rand(100)
    b = stratified_split(labels, (0.6, 0.2, 0.2), seed=5)
    assert all(torch.equal(a[s], b[s]) for s in SPLITS)


@pytest.mark.parametrize("text, expected", [
    ("60/20/20", (0.6, 0.2, 0.2)),
    ("0.8/0.1/0.1", (0.8, 0.1, 0.1)),
    ("3/1/1", (0.6, 0.2, 0.2)),
    ((70, 0, 30), (0.7, 0.0, 0.3)),
])
def test_parse_fractions(text, expected):
    assert parse_fractions(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["60/20", "a/b/c", "60/-20/60", "0/50/50", "", "1/2/3/4"])
def test_parse_fractions_rejects_bad_input(text):
    with pytest.raises(DataError):
        parse_fractions(text)


def test_unknown_split_name_is_a_data_error():
    split = stratified_split(make_labels([5, 5]), (0.6, 0.2, 0.2))
    with pytest.raises(DataError, match="unknown split 'training'"):
        split["training"]


# ----------------------------------------------------------------------------- split files

FILES = [f"{cls}/{cls}{i:02d}.jpg" for cls in ("agricultural", "airplane", "beach")
         for i in range(5)]


def write_splits(folder, name, lists):
    folder.mkdir(parents=True, exist_ok=True)
    for s in SPLITS:
        (folder / f"{name}-{s}.txt").write_text("\n".join(lists[s]) + "\n")
    return folder


def test_split_files_match_tif_names_to_jpg_files_by_stem(tmp_path):
    lists = {
        "train": [f.split("/")[1].replace(".jpg", ".tif") for f in FILES[:9]],
        "val": [f.split("/")[1].replace(".jpg", ".tif") for f in FILES[9:12]],
        "test": [f.split("/")[1].replace(".jpg", ".tif") for f in FILES[12:]],
    }
    folder = write_splits(tmp_path / "splits", "uc_merced", lists)
    paths = find_split_files(folder, ("uc_merced", "ucmerced"))
    split = split_from_files(FILES, paths)
    assert split.train.tolist() == list(range(9))
    assert split.val.tolist() == [9, 10, 11]
    assert split.test.tolist() == [12, 13, 14]
    assert_partition(split, len(FILES))


def test_split_files_accept_relative_paths_exact_names_comments_and_blank_lines(tmp_path):
    lists = {
        "train": ["# comment", "agricultural/agricultural00.jpg", "", "airplane03.jpg",
                  "  beach04  ", "C:\\data\\airplane00.tif"],
        "val": ["agricultural01"],
        "test": ["beach/beach02.jpg"],
    }
    split = split_from_files(FILES, find_split_files(write_splits(tmp_path, "x", lists), ("x",)))
    assert split.train.tolist() == sorted([0, 8, 14, 5])
    assert split.val.tolist() == [1]
    assert split.test.tolist() == [12]


def test_split_file_line_matching_nothing_names_file_and_line(tmp_path):
    lists = {"train": ["agricultural00.tif"], "val": ["agricultural01.tif", "harbor07.tif"],
             "test": []}
    folder = write_splits(tmp_path, "uc_merced", lists)
    with pytest.raises(DataError) as err:
        split_from_files(FILES, find_split_files(folder, ("uc_merced",)))
    msg = str(err.value)
    assert "uc_merced-val.txt:2" in msg and "harbor07.tif" in msg


@pytest.mark.parametrize("lists, where", [
    ({"train": ["beach01.tif"], "val": ["beach01.jpg"], "test": []}, "x-val.txt:1"),
    ({"train": ["beach01.tif", "beach/beach01.jpg"], "val": [], "test": []}, "x-train.txt:2"),
])
def test_duplicate_split_lines_are_rejected(tmp_path, lists, where):
    folder = write_splits(tmp_path, "x", lists)
    with pytest.raises(DataError) as err:
        split_from_files(FILES, find_split_files(folder, ("x",)))
    assert where in str(err.value) and "already in the train split" in str(err.value)


def test_find_split_files_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        find_split_files(tmp_path / "nope", ("x",))
    folder = tmp_path / "partial"
    folder.mkdir()
    (folder / "x-train.txt").write_text("a\n")
    (folder / "x-val.txt").write_text("a\n")
    with pytest.raises(DataError) as err:
        find_split_files(folder, ("x", "y"))
    assert "x-train.txt" in str(err.value) and "y-train.txt" in str(err.value)


def test_find_split_files_takes_the_first_complete_name(tmp_path):
    write_splits(tmp_path, "ucmerced", {s: ["a"] for s in SPLITS})
    write_splits(tmp_path, "uc_merced", {s: ["b"] for s in SPLITS})
    paths = find_split_files(tmp_path, ("uc_merced", "ucmerced"))
    assert paths["test"].name == "uc_merced-test.txt"


def test_prepare_data_with_split_dir(folder_dataset, cache_dir, tmp_path):
    files = [f for c in folder_dataset.classes for f in folder_dataset.files[c]]
    names = [f.split("/")[1].replace(".jpg", ".tif") for f in files]
    lists = {"train": names[0::3], "val": names[1::3], "test": names[2::3]}
    split_dir = write_splits(tmp_path / "splits", "folder", lists)
    cfg = DataConfig(dataset="folder", data_root=str(folder_dataset.data_root), image_size=8,
                     cache_dir=str(cache_dir), split_dir=str(split_dir), workers=1)
    data = prepare_data(cfg, progress=False)
    assert data.split.sizes() == {"train": 6, "val": 6, "test": 6}
    assert sorted(data.dataset.files[i].split("/")[1].replace(".jpg", ".tif")
                  for i in data.split.test.tolist()) == sorted(lists["test"])


def test_prepare_data_default_split(folder_dataset, cache_dir):
    cfg = DataConfig(dataset="folder", data_root=str(folder_dataset.data_root), image_size=8,
                     cache_dir=str(cache_dir), workers=1)
    data = prepare_data(cfg, progress=False)
    # 6 images a class at 60/20/20: 4/1/1 per class.
    assert data.split.sizes() == {"train": 12, "val": 3, "test": 3}
    for s, per in (("train", 4), ("val", 1), ("test", 1)):
        assert torch.bincount(data.dataset.labels[data.split[s]], minlength=3).tolist() == [per] * 3
    other = prepare_data(DataConfig(**{**cfg.to_dict(), "split_seed": 1}), progress=False)
    assert not torch.equal(other.split.train, data.split.train)
