"""Transfer sets: unlabelled images (flat or class-per-folder, folder or zip) join the
training split with no label, and never an image of the test split."""

from __future__ import annotations

import shutil
import zipfile

import pytest
import torch

from rsdistill.data.module import prepare_data
from rsdistill.data.transfer import NO_LABEL
from rsdistill.errors import ConfigError, DataError
from tests.conftest import write_class_tree


@pytest.fixture(scope="module")
def other_tree(tmp_path_factory):
    """Images of the same painting rule as tiny_tree3, other random draws (seed 5)."""
    return write_class_tree(tmp_path_factory.mktemp("other"), ["a", "b"], per_class=5, seed=5)


def _flat_copy(tree, folder, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    for p in sorted(tree.rglob("*.png")):
        if names is None or f"{p.parent.name}/{p.name}" in names:
            shutil.copy(p, folder / f"{p.parent.name}_{p.name}")
    return folder


def test_transfer_images_join_the_training_split_unlabelled(tiny_data, other_tree, tmp_path):
    plain = prepare_data(tiny_data(), progress=False)
    data = prepare_data(tiny_data(transfer_set=str(_flat_copy(other_tree, tmp_path / "flat"))),
                        progress=False)
    n = len(plain.dataset)
    assert len(data.dataset) == n + 10
    assert torch.equal(data.split.train, torch.cat([plain.split.train, torch.arange(n, n + 10)]))
    assert torch.equal(data.split.test, plain.split.test)
    assert bool((data.dataset.labels[n:] == NO_LABEL).all())
    assert data.dataset.counts() == plain.dataset.counts()
    assert data.normalizer == plain.normalizer
    assert data.dataset.fingerprint != plain.dataset.fingerprint


def test_a_class_per_folder_zip_is_a_transfer_set_too(tiny_data, other_tree, tmp_path):
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(other_tree.rglob("*.png")):
            z.write(p, f"other/{p.parent.name}/{p.name}")
    data = prepare_data(tiny_data(transfer_set=str(archive), transfer_limit=4), progress=False)
    assert int((data.dataset.labels == NO_LABEL).sum()) == 4


def test_an_image_of_the_test_split_is_refused(tiny_data, tiny_tree3, other_tree, tmp_path):
    plain = prepare_data(tiny_data(), progress=False)
    test_files = {plain.dataset.files[i] for i in plain.split.test[:2].tolist()}
    folder = _flat_copy(other_tree, tmp_path / "mixed")
    _flat_copy(tiny_tree3, folder, test_files)
    with pytest.raises(DataError) as err:
        prepare_data(tiny_data(transfer_set=str(folder)), progress=False)
    message = str(err.value)
    assert "2 image(s) are images of the test split" in message and "\n" not in message
    assert any(f.split("/")[1] in message for f in test_files)
    # Training images are no leak: they may be part of a transfer set.
    train_file = plain.dataset.files[int(plain.split.train[0])]
    ok = _flat_copy(tiny_tree3, tmp_path / "train-copy", {train_file})
    prepare_data(tiny_data(transfer_set=str(ok)), progress=False)


@pytest.mark.parametrize("spec, needle", [("no-such-thing", "neither a folder"),
                                          ("EMPTY", "holds no images")])
def test_a_transfer_set_that_is_not_one_is_one_error_line(tiny_data, tmp_path, spec, needle):
    if spec == "EMPTY":
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "notes.txt").write_text("x")
        spec = str(tmp_path / "empty")
    with pytest.raises(DataError, match=needle):
        prepare_data(tiny_data(transfer_set=spec), progress=False)


def test_transfer_limit_must_be_positive(tiny_data):
    with pytest.raises(ConfigError, match="--transfer-limit"):
        prepare_data(tiny_data(transfer_set="aid", transfer_limit=0), progress=False)
