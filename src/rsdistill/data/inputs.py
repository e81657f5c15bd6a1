"""New images to predict on: files, folders (recursive) and zips, read through the same
sources (and later the same decoder) as the datasets, so nothing is read differently.

A dataset wants ``<class>/<file>`` trees of a few formats; here any file Pillow can open,
at any depth, is an input, named as the user will recognise it: the path as given
(folder + relative path), or ``archive.zip:member``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageFile

from rsdistill.data.sources import (
    MACOS_RESOURCE_DIR, FolderSource, ImageSource, input_location, natural_key, open_source,
)
from rsdistill.errors import DataError

ZIP_SUFFIX = ".zip"


@functools.lru_cache(maxsize=1)
def readable_extensions() -> frozenset[str]:
    """Suffixes of every format Pillow can decode here (stub plugins, which only
    identify a format they cannot read, and save-only formats left out)."""
    Image.init()
    def decodes(fmt: str) -> bool:
        factory = Image.OPEN.get(fmt, (None,))[0]
        # Some formats register a factory function instead of a class; those decode.
        return factory is not None and not (isinstance(factory, type)
                                            and issubclass(factory, ImageFile.StubImageFile))

    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if decodes(fmt))


def is_readable_image(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    # Hidden files include macOS "._name.jpg" resource forks, which are not images.
    return dot > 0 and not name.startswith(".") and name[dot:].lower() in readable_extensions()


@dataclass
class InputGroup:
    """Images read from one source: ``files`` relative to it, ``names`` as shown to the user."""

    source: ImageSource
    files: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    single_files: bool = False  # files named on the command line, not a folder or zip


def _tree_images(paths: list[str]) -> list[str]:
    keep = [p for p in paths if not p.endswith("/") and is_readable_image(p)
            and MACOS_RESOURCE_DIR not in p.split("/")]
    return sorted(keep, key=natural_key)


def _group_for(path: Path) -> InputGroup:
    # Names are absolute locations (input_location), as 'evaluate --predictions' writes them.
    if path.is_dir():
        source = FolderSource(path)
        files = _tree_images(source.list_files())
        return InputGroup(source, files, [input_location(source, f) for f in files])
    if path.suffix.lower() == ZIP_SUFFIX:
        source = open_source(path)  # refuses a .zip that is not one, in one line
        files = _tree_images(source.list_files())
        return InputGroup(source, files, [input_location(source, f) for f in files])
    # A file named on the command line is tried whatever its suffix: the decoder decides.
    source = FolderSource(path.parent)
    return InputGroup(source, [path.name], [input_location(source, path.name)], single_files=True)


def collect_inputs(paths: list[str | Path]) -> list[InputGroup]:
    """One group per input path, in the order given; each folder or zip naturally sorted."""
    if not paths:
        raise DataError("no inputs given; pass image files, folders or zips")
    groups: list[InputGroup] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise DataError(f"input {path} does not exist")
        group = _group_for(path)
        last = groups[-1] if groups else None
        # Files of one folder named one by one (a shell glob) share one source, so they
        # are decoded in as few calls, and worker pools, as a folder would be.
        if (path.is_file() and last is not None and last.single_files
                and getattr(last.source, "root", None) == path.parent):
            last.files += group.files
            last.names += group.names
        else:
            groups.append(group)
    if not any(g.files for g in groups):
        shown = ", ".join(str(p) for p in paths[:3]) + (" …" if len(paths) > 3 else "")
        raise DataError(f"no image files found in {shown} (looked for the formats Pillow reads: "
                        ".jpg, .png, .tif, .bmp, .webp, …)")
    return groups


def count_inputs(groups: list[InputGroup]) -> int:
    return sum(len(g.files) for g in groups)
