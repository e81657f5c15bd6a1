"""Transfer sets: unlabelled images the teacher labels, added to the student's training.

A transfer set is another dataset (its name, read from the data root), a class-per-folder
tree or a flat folder of images, a folder or a zip; its classes, if any, are ignored.
Its images are decoded with the dataset machinery (cached where it has classes) at every
size the run reads, and join the training split with the label :data:`NO_LABEL`: the
loss's label term skips them, the teacher's soft targets teach them.

An image of the target's test split must never teach the student: any transfer image
whose decoded pixels at the student's size equal a test image's is refused, one error
naming the count and an example. (Identical files decode to identical pixels, so this
also refuses byte-identical copies; a re-encoded or resized copy is not caught.)
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm import tqdm

from rsdistill.data import decode as decode_mod
from rsdistill.data.dataset import SceneDataset, load_dataset_sizes
from rsdistill.data.sources import auto_root, is_image_path, open_source
from rsdistill.data.specs import DATASETS
from rsdistill.errors import DataError

log = logging.getLogger(__name__)

# The label of a transfer image: cross-entropy's ignore_index, so the hard loss skips it.
NO_LABEL = -100


@dataclass
class TransferSet:
    where: str
    files: list[str]  # where each image came from, for messages
    images: dict[int, torch.Tensor]  # decoded size -> uint8 N×3×S×S
    fingerprint: str

    def __len__(self) -> int:
        return len(self.files)


def load_transfer(spec: str, data_root: str | None, sizes: tuple[int, ...], *,
                  cache_dir: str | None, workers: int | None, progress: bool,
                  limit: int | None = None, skip_corrupt: bool = False) -> TransferSet:
    """The images of ``spec`` (a path, else a dataset name) at ``sizes``; ``limit``: a
    fixed random subset of that many."""
    path = Path(spec).expanduser()
    if path.exists():
        source = open_source(path)
        images = [p for p in source.list_files() if is_image_path(p)]
        if not images:
            raise DataError(f"--transfer-set {path} holds no images (jpg, png, tif, ...)")
        if auto_root(images) is None or any("/" not in p for p in images):
            t = _flat(source, images, sizes, workers, progress)
        else:
            t = _dataset("folder", str(path), sizes, cache_dir, workers, progress, skip_corrupt)
    elif spec in DATASETS and not DATASETS.get(spec).is_generic:
        t = _dataset(spec, data_root, sizes, cache_dir, workers, progress, skip_corrupt)
    else:
        raise DataError(f"--transfer-set {spec} is neither a folder or zip of images nor a "
                        f"dataset name ({', '.join(n for n in DATASETS.names() if n != 'folder')})")
    if limit is not None and limit < len(t):
        keep = torch.randperm(len(t), generator=torch.Generator().manual_seed(0))[:limit].sort()[0]
        t = TransferSet(t.where, [t.files[i] for i in keep.tolist()],
                        {s: x[keep] for s, x in t.images.items()}, f"{t.fingerprint}/{limit}")
    return t


def _dataset(name: str, root: str | None, sizes, cache_dir, workers, progress,
             skip_corrupt: bool) -> TransferSet:
    # The run's --skip-corrupt, so a dataset's decoded cache is shared with its own runs.
    decoded = load_dataset_sizes(name, root, sizes, cache_dir=cache_dir,
                                 skip_corrupt=skip_corrupt, workers=workers, progress=progress)
    first = decoded[sizes[0]]
    return TransferSet(first.source, [f"{first.source}/{f}" for f in first.files],
                       {s: d.images for s, d in decoded.items()}, first.fingerprint)


def _flat(source, files: list[str], sizes, workers, progress) -> TransferSet:
    with tqdm(total=len(files), desc="decoding transfer set", unit="img",
              disable=None if progress else True) as bar:
        result = decode_mod.decode_images(source, files, tuple(sizes), workers, bar.update)
    if result.errors:
        log.warning("transfer set: left out %d image(s) that cannot be used, e.g. %s",
                    len(result.errors), source.location(result.errors[0][0]))
    keep = torch.from_numpy(result.ok)
    kept = [source.location(f) for f, ok in zip(files, result.ok) if ok]
    return TransferSet(str(source), kept,
                       {s: torch.from_numpy(result.arrays[s])[keep].contiguous() for s in sizes},
                       source.fingerprint(files))


def pixel_hashes(images: torch.Tensor) -> list[str]:
    """A content hash of each uint8 image (its decoded pixels)."""
    return [hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest() for x in images]


def refuse_test_images(transfer: TransferSet, size: int, images: torch.Tensor,
                       test: torch.Tensor, test_files: list[str]) -> None:
    """One error if any transfer image (``images``: at the student's view, ``size`` px) has
    the pixels of a test image."""
    test_hashes = dict(zip(pixel_hashes(test), test_files))
    hits = [(f, test_hashes[h]) for f, h in zip(transfer.files, pixel_hashes(images))
            if h in test_hashes]
    if hits:
        raise DataError(f"--transfer-set {transfer.where}: {len(hits)} image(s) are images of "
                        f"the test split (identical pixels at {size} px), e.g. {hits[0][0]} = "
                        f"{hits[0][1]}; remove them from the transfer set")


def with_transfer(ds: SceneDataset, images: torch.Tensor, fingerprint: str) -> SceneDataset:
    """``ds`` with the transfer ``images`` (its size) appended, labelled :data:`NO_LABEL`."""
    n = images.shape[0]
    return replace(ds, images=torch.cat([ds.images, images]),
                   labels=torch.cat([ds.labels, torch.full((n,), NO_LABEL, dtype=torch.int64)]),
                   files=[*ds.files, *(f"transfer/{i}" for i in range(n))],
                   fingerprint=f"{ds.fingerprint}+{fingerprint}", cache_path=None)
