"""Shared fixtures: small datasets of real image files in every supported layout.

Images are written with Pillow (JPEG, PNG or TIFF by extension), 40×37 px by
default so that every load exercises a non-square resize. Each image has random
pixel content on top of a class colour: channel ``class_index % 3`` is bright and
the others dark, so a test can check that a decoded image sits under the right
label without comparing exact pixels (JPEG is lossy). Nothing here touches
~/.cache: the cache directory is redirected for the whole session.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from rsdistill.data.module import DataConfig
from rsdistill.training.config import TrainConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_DATA_ENV = "RSDISTILL_TEST_DATA"

FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF",
           ".bmp": "BMP"}


@pytest.fixture(scope="session", autouse=True)
def _no_user_cache(tmp_path_factory):
    """Safety net: code that forgets to pass cache_dir writes to a temp dir, not ~/.cache."""
    saved = {k: os.environ.get(k) for k in ("RSDISTILL_CACHE",)}
    os.environ["RSDISTILL_CACHE"] = str(tmp_path_factory.mktemp("default-cache"))
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def image_array(rng: np.random.Generator, class_index: int, size=(40, 37)) -> np.ndarray:
    """H×W×3 uint8: random texture, channel ``class_index % 3`` bright, the others dark."""
    w, h = size
    arr = rng.integers(10, 90, size=(h, w, 3), dtype=np.int64)
    bright = class_index % 3
    arr[..., bright] = rng.integers(150, 250, size=(h, w))
    # A per-image brightness offset makes image statistics differ between subsets.
    arr = arr + int(rng.integers(-10, 10))
    return np.clip(arr, 0, 255).astype(np.uint8)


def encode(arr: np.ndarray, ext: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, FORMATS[ext.lower()])
    return buf.getvalue()


@dataclass
class Built:
    """A generated dataset. ``data_root`` is what to pass as data root; ``path`` is the
    class-folder tree or zip that was written; ``files`` maps class -> member paths
    relative to the class root ("<class>/<file>")."""

    data_root: Path
    path: Path
    classes: list[str]
    files: dict[str, list[str]] = field(default_factory=dict)
    prefix: str = ""

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.files.values())


@pytest.fixture
def image_bytes():
    """``image_bytes(ext=".jpg", class_index=0, seed=0, size=(40, 37)) -> bytes``."""

    def make(ext: str = ".jpg", class_index: int = 0, seed: int = 0, size=(40, 37)) -> bytes:
        return encode(image_array(np.random.default_rng(seed), class_index, size), ext)

    return make


@pytest.fixture
def build_dataset(tmp_path):
    """Write a class-per-folder dataset of real images, extracted or as a zip.

    ``build_dataset(classes, per_class=6, prefix="", ext=".jpg", zip_name=None,
    name="{cls}_{i}", root_name="data", extra=None, seed=0)``

    * ``prefix``: folders above the class folders, e.g. "UCMerced_LandUse/Images".
    * ``zip_name``: write ``<data_root>/<zip_name>`` instead of a folder tree.
    * ``per_class``: an int, or a dict class -> count.
    * ``extra``: {relative path: bytes} written as well (junk, hidden files, ...).
    """
    counter = {"n": 0}

    def build(classes, per_class=6, prefix: str = "", ext: str = ".jpg",
              zip_name: str | None = None, name: str = "{cls}_{i}", root_name: str | None = None,
              extra: dict[str, bytes] | None = None, seed: int = 0, size=(40, 37)) -> Built:
        counter["n"] += 1
        data_root = tmp_path / (root_name or f"data{counter['n']}")
        data_root.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        pre = prefix.strip("/") + "/" if prefix.strip("/") else ""
        entries: dict[str, bytes] = {}
        files: dict[str, list[str]] = {}
        for k, cls in enumerate(classes):
            n = per_class[cls] if isinstance(per_class, dict) else per_class
            files[cls] = []
            for i in range(n):
                rel = f"{cls}/{name.format(cls=cls, i=i)}{ext}"
                entries[pre + rel] = encode(image_array(rng, k, size), ext)
                files[cls].append(rel)
        entries.update(extra or {})
        if zip_name is not None:
            path = data_root / zip_name
            with zipfile.ZipFile(path, "w") as zf:
                for member, data in entries.items():
                    zf.writestr(member, data)
        else:
            path = data_root / pre if pre else data_root
            for member, data in entries.items():
                dest = data_root / member
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
        return Built(data_root=data_root, path=path, classes=list(classes), files=files,
                     prefix=pre.rstrip("/"))

    return build


@pytest.fixture
def folder_dataset(build_dataset) -> Built:
    """Generic class-per-folder tree: 3 classes × 6 JPEGs of 40×37 px."""
    return build_dataset(["alpha", "beta", "gamma"], per_class=6)


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The folder with the real dataset zips (../shared/datasets beside the repo, or
    $RSDISTILL_TEST_DATA); skips the test when it is absent."""
    env = os.environ.get(TEST_DATA_ENV)
    path = Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "datasets"
    if not path.is_dir():
        pytest.skip(f"real datasets not found at {path} (set {TEST_DATA_ENV} to their folder)")
    return path


# ----------------------------------------------------------------------------- training
# Added for tests/engine and tests/cli/test_cli_train*.py: torch on one thread, and tiny
# session-wide class-folder trees that training runs can share (decoded once per cache).

@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Two test processes on two cores with two torch threads each run ~50x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_class_tree(root: Path, classes, per_class: int = 12, size=(20, 20), seed: int = 0,
                     ext: str = ".png", colours=None, shifts=None) -> Path:
    """``root/<class>/<class>_<i><ext>`` images; returns root. Class k is painted like the
    fixture's class ``colours[k]`` (default k) and brightened by ``shifts[k]`` (default 0):
    classes of one colour and close shifts overlap, so a small model separates them only
    partly and its metrics are not trivially perfect."""
    rng = np.random.default_rng(seed)
    colours = list(range(len(classes))) if colours is None else list(colours)
    shifts = [0] * len(classes) if shifts is None else list(shifts)
    for k, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = image_array(rng, colours[k], size)
            arr = np.clip(arr.astype(np.int64) + shifts[k], 0, 255).astype(np.uint8)
            (root / cls / f"{cls}_{i}{ext}").write_bytes(encode(arr, ext))
    return root


@pytest.fixture(scope="session")
def tiny_tree3(tmp_path_factory) -> Path:
    """3 classes × 12 PNGs of 20×20 px, the smallest tree a run trains on in ~1 s.
    "field" and "forest" differ only slightly in brightness, so accuracy and the
    confusion matrix depend on the exact weights (a test comparing metrics is not
    comparing 1.0 with 1.0)."""
    return write_class_tree(tmp_path_factory.mktemp("tiny3"), ["field", "forest", "river"],
                            colours=(0, 0, 1), shifts=(0, 12, 0))


@pytest.fixture(scope="session")
def tiny_tree4(tmp_path_factory) -> Path:
    """Like ``tiny_tree3`` plus a fourth class: data a 3-class teacher does not fit."""
    return write_class_tree(tmp_path_factory.mktemp("tiny4"),
                            ["field", "forest", "river", "urban"], colours=(0, 0, 1, 2),
                            shifts=(0, 12, 0, 0))


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """One decoded-tensor cache for every run on the tiny trees."""
    return tmp_path_factory.mktemp("tiny-cache")


@pytest.fixture
def tiny_data(tiny_tree3, tiny_cache):
    """``tiny_data(tree=None, **overrides) -> DataConfig`` for --dataset folder at 16 px."""

    def make(tree=None, **overrides) -> DataConfig:
        cfg = dict(dataset="folder", data_root=str(tree or tiny_tree3), image_size=16,
                   cache_dir=str(tiny_cache), workers=1)
        cfg.update(overrides)
        return DataConfig(**cfg)

    return make


@pytest.fixture
def tiny_train():
    """``tiny_train(**overrides) -> TrainConfig``: resnet8, 3 epochs, batches of 8 (3 steps
    per epoch on the tiny tree's ~21 training images), bf16 + channels_last on CPU."""

    def make(**overrides) -> TrainConfig:
        cfg = dict(model="resnet8", epochs=3, batch_size=8, lr=0.05, seed=0, device="cpu",
                   precision="auto", latency_runs=3)
        cfg.update(overrides)
        return TrainConfig(**cfg)

    return make


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory, tiny_tree3, tiny_cache) -> Path:
    """A resnet8 teacher trained 2 epochs (seed 7) on ``tiny_tree3`` at 16 px, for every
    test that distils from one. Shared by the whole session: read it, never write to it."""
    import torch

    from rsdistill.experiments.procedures import run_training

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny-teacher") / "teacher"
    data = DataConfig(dataset="folder", data_root=str(tiny_tree3), image_size=16,
                      cache_dir=str(tiny_cache), workers=1)
    run_training(out, data, TrainConfig(model="resnet8", epochs=2, batch_size=8, device="cpu",
                                        latency_runs=2, seed=7), progress=False)
    return out
