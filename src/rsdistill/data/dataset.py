"""Find a dataset under a data root, decode it once, cache it, and load it fast.

The result is a :class:`SceneDataset`: one uint8 tensor N×3×S×S with labels and
file names. The first load decodes every image (in parallel) and writes the cache
atomically; later loads read only the cache file.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from rsdistill.data import decode as decode_mod
from rsdistill.data.cache import (
    cache_key, cache_path_for, clean_cache_dir, entry_problem, read_cache, write_cache,
)
from rsdistill.data.download import download_dataset
from rsdistill.data.pixels import NOTE_EXTRA_BANDS, NOTE_FLOAT_CLIPPED
from rsdistill.data.sources import (
    ClassTree, FolderSource, ImageSource, auto_root, find_root, group_by_class, input_location,
    open_source,
)
from rsdistill.data.specs import DATASETS, DatasetSpec
from rsdistill.errors import DataError
from rsdistill.paths import DATA_ENV, default_cache_dir, default_data_root  # noqa: F401

log = logging.getLogger(__name__)


@dataclass
class SceneDataset:
    name: str
    classes: list[str]
    images: torch.Tensor  # uint8, N×3×S×S
    labels: torch.Tensor  # int64, N
    files: list[str]  # paths relative to the dataset's class root: "<class>/<file>"
    image_size: int
    source: str
    fingerprint: str
    cache_path: Path | None = None
    skipped: list[str] = field(default_factory=list)
    missing_classes: list[str] = field(default_factory=list)
    # Where the class root is, as an absolute location ("/data/ucmerced.zip:UCMerced_LandUse/
    # Images/"): with a file it names the image as 'rsdistill predict' names it.
    location_prefix: str = ""

    def location(self, i: int) -> str:
        """Image ``i`` as 'rsdistill predict' names it when given the same folder or zip."""
        return self.location_prefix + self.files[i]

    def __len__(self) -> int:
        return int(self.labels.numel())

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def counts(self) -> dict[str, int]:
        # Unlabelled images (a transfer set's, label < 0) belong to no class.
        per = torch.bincount(self.labels[self.labels >= 0], minlength=self.num_classes).tolist()
        return dict(zip(self.classes, per))


# ----------------------------------------------------------------------------- locating

def _resolve_classes(spec: DatasetSpec, tree: dict[str, list[str]]) -> dict[str, str]:
    """Map official class name -> folder name found, tolerating case differences."""
    by_lower = {name.lower(): name for name in tree}
    found = {}
    for cls in spec.classes:
        if cls in tree:
            found[cls] = cls
        elif cls.lower() in by_lower:
            found[cls] = by_lower[cls.lower()]
    return found


def _not_found_message(spec: DatasetSpec, data_root: Path) -> str:
    layout = spec.layouts[0] if spec.layouts else "<class>"
    where = (f"expected an extracted folder {data_root / layout}/<class>/ or an archive "
             f"{' or '.join(str(data_root / a) for a in spec.archives)}")
    how = (f"download it with --download (from {spec.downloads[0].url})" if spec.downloads
           else spec.manual_download)
    return f"{spec.title} not found under {data_root}: {where}; {how}"


def locate(spec: DatasetSpec, data_root: Path) -> tuple[ImageSource, str]:
    """The source holding ``spec`` under ``data_root`` and the class-root prefix inside it."""
    data_root = Path(data_root).expanduser()
    if not data_root.exists():
        fetch = (f", or pass --download to fetch {spec.downloads[0].filename} into it"
                 if spec.downloads else "")
        raise DataError(f"data root {data_root} does not exist; pass --data-root DIR or set "
                        f"{DATA_ENV}{fetch}")
    if spec.is_generic:
        source = open_source(data_root)
        paths = source.list_files()
        root = auto_root(paths)
        if root is None:
            raise DataError(
                f"no class folders with images found in {data_root}; expected "
                f"{data_root}/<class>/<image> (jpg, png, tif, ...)"
            )
        return source, root
    if data_root.is_file():
        source = open_source(data_root)
        return source, _root_in_source(spec, source, data_root)
    for layout in spec.layouts:
        folder = data_root / layout
        if folder.is_dir():
            return FolderSource(folder), ""
    for archive in spec.archives:
        path = data_root / archive
        if path.is_file():
            source = open_source(path)
            return source, _root_in_source(spec, source, path)
    # The data root itself may be the class root (e.g. .../UCMerced_LandUse/Images).
    if data_root.is_dir():
        children = {p.name.lower() for p in data_root.iterdir() if p.is_dir()}
        if children & {c.lower() for c in spec.classes}:
            return FolderSource(data_root), ""
    raise DataError(_not_found_message(spec, data_root))


def _root_in_source(spec: DatasetSpec, source: ImageSource, where: Path) -> str:
    paths = source.list_files()
    root = find_root(paths, spec.layouts)
    if root is None:
        tops = sorted({p.split("/")[0] for p in paths})[:8]
        raise DataError(
            f"unknown layout in {where}: expected {spec.title} class folders under one of "
            f"{', '.join(l + '/' for l in spec.layouts)}; found top-level entries: "
            f"{', '.join(tops) or '(none)'}"
        )
    return root


def discover(spec: DatasetSpec, source: ImageSource, root: str,
             allow_missing_classes: bool = False) -> tuple[ClassTree, list[str], list[str]]:
    """Class folders under ``root``; returns (tree in official class order, classes, missing)."""
    files, ignored = group_by_class(source.list_files(), root)
    where = source.location(root)
    if spec.is_generic:
        if not files:
            raise DataError(f"no class folders found in {where}")
        classes = list(files)
        tree = files
        missing: list[str] = []
    else:
        mapping = _resolve_classes(spec, files)
        classes = [c for c in spec.classes if c in mapping]
        missing = [c for c in spec.classes if c not in mapping]
        unknown = sorted(set(files) - set(mapping.values()))
        if unknown:
            log.warning("ignoring %d folder(s) that are not %s classes: %s",
                        len(unknown), spec.title, ", ".join(unknown[:10]))
        if not classes:
            raise DataError(
                f"no {spec.title} class folders found in {where}; found: "
                f"{', '.join(sorted(files)[:10]) or '(nothing)'}"
            )
        if missing and not allow_missing_classes:
            raise DataError(
                f"{spec.title}: {len(missing)} of {len(spec.classes)} classes missing in {where}"
                f" (found {len(classes)}: {', '.join(classes)}; missing: {', '.join(missing)}); "
                "pass --allow-missing-classes to use only the classes found"
            )
        if missing:
            log.warning("%s: using the %d classes found; %d missing (%s)", spec.title,
                        len(classes), len(missing), ", ".join(missing))
        tree = {c: files[mapping[c]] for c in classes}
    empty = [c for c in classes if not tree[c]]
    if empty:
        raise DataError(
            f"class folder(s) with no images in {where}: {', '.join(empty)}; "
            "remove them or add images"
        )
    if ignored:
        log.debug("ignored %d non-image or misplaced files", len(ignored))
    return ClassTree(source, root, tree, ignored), classes, missing


# ----------------------------------------------------------------------------- loading

def load_dataset(name: str, data_root: str | Path | None = None, image_size: int = 32, **kw
                 ) -> SceneDataset:
    """Load one dataset at one size. See :func:`load_dataset_sizes` for the options."""
    return load_dataset_sizes(name, data_root, (image_size,), **kw)[image_size]


def load_dataset_sizes(name: str, data_root: str | Path | None = None,
                       sizes: tuple[int, ...] = (32,), *, cache_dir: str | Path | None = None,
                       allow_missing_classes: bool = False, skip_corrupt: bool = False,
                       download: bool = False, workers: int | None = None,
                       progress: bool = True, use_cache: bool = True) -> dict[int, SceneDataset]:
    """The same images at several sizes from one decode pass; each size is cached on its own."""
    sizes = tuple(dict.fromkeys(int(s) for s in sizes))
    for s in sizes:
        if s < 1 or s > 4096:
            raise DataError(f"--image-size must be between 1 and 4096, got {s}")
    spec = DATASETS.get(name)
    root_dir = Path(data_root).expanduser() if data_root is not None else default_data_root()
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    try:
        source, root = locate(spec, root_dir)
    except DataError:
        if not download or spec.is_generic:
            raise
        download_dataset(spec, root_dir, progress=progress)
        source, root = locate(spec, root_dir)

    _check_refused_folders(source, root, skip_corrupt)
    tree, classes, missing = discover(spec, source, root, allow_missing_classes)
    files = [f for c in classes for f in tree.files[c]]
    labels = [i for i, c in enumerate(classes) for _ in tree.files[c]]
    fingerprint, key = cache_key(spec, source, root, classes, files, skip_corrupt)
    prefix = root + "/" if root else ""
    rel_files = [f[len(prefix):] for f in files]
    located = {"location_prefix": input_location(source, prefix + "x")[:-1]}
    if use_cache:
        clean_cache_dir(cache_dir)

    out: dict[int, SceneDataset] = {}
    todo = []
    for s in sizes:
        path = cache_path_for(cache_dir, spec.name, s, key)
        cached = read_cache(path, functools.partial(entry_problem, size=s, classes=classes,
                                                    listed=len(files))) if use_cache else None
        if cached is not None:
            out[s] = SceneDataset(
                name=spec.name, classes=list(cached["classes"]), images=cached["images"],
                labels=cached["labels"], files=list(cached["files"]), image_size=s,
                source=str(source), fingerprint=fingerprint, cache_path=path,
                skipped=list(cached["skipped"]), missing_classes=missing, **located,
            )
        else:
            todo.append(s)
    if not todo:
        return out

    with tqdm(total=len(files), desc=f"decoding {spec.name}", unit="img",
              disable=None if progress else True) as bar:
        result = decode_mod.decode_images(source, files, tuple(todo), workers, bar.update)
    if result.errors and not skip_corrupt:
        bad, reason = result.errors[0]
        more = f" (and {len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
        raise DataError(
            f"cannot use image {source.location(bad)}{more}: {reason}; fix or remove it, or "
            "pass --skip-corrupt to leave such images out"
        )
    _report_notes(source, result.notes)
    keep = torch.from_numpy(result.ok)
    skipped = [rel_files[i] for i in range(len(files)) if not result.ok[i]]
    if skipped:
        log.warning("skipped %d image(s) that cannot be used (corrupt, not a regular file, or "
                    "outside the data folder): %s", len(skipped), ", ".join(skipped[:5]))
    kept_files = [f for f, ok in zip(rel_files, result.ok) if ok]
    label_t = torch.tensor(labels, dtype=torch.int64)[keep]
    writable = use_cache
    for s in todo:
        images = torch.from_numpy(result.arrays[s])[keep].contiguous()
        path = cache_path_for(cache_dir, spec.name, s, key)
        # One warning when the cache cannot be written; the other sizes are not tried.
        writable = writable and write_cache(
            path, {"images": images, "labels": label_t, "files": kept_files,
                   "classes": classes, "skipped": skipped})
        out[s] = SceneDataset(
            name=spec.name, classes=classes, images=images, labels=label_t, files=kept_files,
            image_size=s, source=str(source), fingerprint=fingerprint,
            cache_path=path if writable else None, skipped=skipped, missing_classes=missing,
            **located,
        )
    return out


def _check_refused_folders(source: ImageSource, root: str, skip_corrupt: bool) -> None:
    """Folders under the class root that are links leaving the data folder: an error,
    or left out (with a warning) under --skip-corrupt."""
    source.list_files()
    prefix = root + "/" if root else ""
    refused = {rel: why for rel, why in source.refused_folders().items() if rel.startswith(prefix)}
    if not refused:
        return
    rel, why = next(iter(refused.items()))
    if not skip_corrupt:
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise DataError(
            f"{source.location(rel.rstrip('/'))} is {why}{more}; refusing to follow it: move "
            "or copy it into the data folder, or pass --skip-corrupt to leave it out"
        )
    log.warning("warning: left out %d folder(s) linked from outside the data folder: %s",
                len(refused),
                ", ".join(source.location(r.rstrip("/")) for r in list(refused)[:5]))


_NOTES = {
    NOTE_EXTRA_BANDS: "have more than three bands (e.g. {}); the first three were used as "
                      "red, green and blue",
    NOTE_FLOAT_CLIPPED: "hold floating-point values outside [0, 1] (e.g. {}), which were "
                        "clipped: float images are read as 0 = black, 1 = white",
}


def _report_notes(source: ImageSource, notes: dict[str, list[str]]) -> None:
    """One line per kind of note for the whole dataset, not one per image."""
    for note, names in notes.items():
        example = source.location(names[0])
        log.warning("warning: %d image(s) %s", len(names), _NOTES[note].format(example))
