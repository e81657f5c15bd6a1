"""Where images come from: an extracted folder tree or a zip archive, read in place.

A source lists relative POSIX paths and returns the bytes of one; decoding and
layout rules live elsewhere, so a zip and a folder behave identically.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rsdistill.errors import DataError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})
MACOS_RESOURCE_DIR = "__MACOSX"


def is_image_path(path: str) -> bool:
    # Plain string ops: this runs once per archive entry (27,000 for EuroSAT) on every load.
    name = path.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    # Hidden files include macOS "._name.jpg" resource forks, which are not images.
    return dot > 0 and not name.startswith(".") and name[dot:].lower() in IMAGE_EXTENSIONS


def check_member_name(name: str, archive: Path) -> None:
    """Refuse archive entries that would escape the folder they are read or extracted into."""
    norm = name.replace("\\", "/")
    parts = norm.split("/")
    if norm.startswith("/") or ".." in parts or (parts and parts[0].endswith(":")):
        raise DataError(
            f"archive {archive} has an unsafe entry {name!r} (absolute path or '..'); "
            "refusing to read it — re-create the archive with relative paths"
        )


class FolderSource:
    kind = "folder"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._files: list[str] | None = None

    def __repr__(self) -> str:
        return f"FolderSource({str(self.root)!r})"

    def list_files(self) -> list[str]:
        # Locating, discovering and fingerprinting all need the listing; walk the tree once
        # per source object (a new object is made for every load, so changes are seen).
        if self._files is not None:
            return self._files
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            prefix = "" if rel == "." else rel + "/"
            out.extend(prefix + d + "/" for d in dirnames)
            out.extend(prefix + f for f in filenames)
        self._files = out
        return out

    def fingerprint(self, files: list[str]) -> str:
        h = hashlib.sha256()
        for rel in sorted(f for f in files if not f.endswith("/")):
            st = os.stat(self.root / rel)
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def opener(self) -> "FolderSource":
        return self


class ZipSource:
    kind = "zip"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        self._files: list[str] | None = None

    def __repr__(self) -> str:
        return f"ZipSource({str(self.path)!r})"

    def __getstate__(self) -> dict:
        # Worker processes reopen the archive themselves; an open handle does not pickle.
        return {"path": self.path, "_zip": None, "_files": None}

    def _open(self) -> zipfile.ZipFile:
        if self._zip is None:
            try:
                self._zip = zipfile.ZipFile(self.path)
            except zipfile.BadZipFile:
                raise DataError(
                    f"{self.path} is not a valid zip archive (corrupt or not a zip); "
                    "download it again or point --data-root at the extracted folder"
                ) from None
            except OSError as exc:
                raise DataError(f"cannot open archive {self.path}: {exc.strerror or exc}") from None
        return self._zip

    def list_files(self) -> list[str]:
        if self._files is not None:
            return self._files
        names = []
        for info in self._open().infolist():
            check_member_name(info.filename, self.path)
            names.append(info.filename)
        self._files = names
        return names

    def fingerprint(self, files: list[str]) -> str:
        z = self._open()
        h = hashlib.sha256()
        for rel in sorted(f for f in files if not f.endswith("/")):
            info = z.getinfo(rel)
            h.update(f"{rel}\0{info.file_size}\0{info.CRC}\n".encode())
        return h.hexdigest()

    def read(self, rel: str) -> bytes:
        return self._open().read(rel)

    def opener(self) -> "ZipSource":
        return ZipSource(self.path)


ImageSource = FolderSource | ZipSource


def open_source(path: Path) -> ImageSource:
    path = Path(path)
    if path.is_dir():
        return FolderSource(path)
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise DataError(
                f"{path} is not a zip archive; pass a class-per-folder directory or a .zip of one"
            )
        return ZipSource(path)
    raise DataError(f"{path} does not exist; check --data-root")


@dataclass
class ClassTree:
    """Class folders found in a source: class name -> sorted relative image paths."""

    source: ImageSource
    root: str  # prefix inside the source ("" for the top), no trailing slash
    files: dict[str, list[str]]
    ignored: list[str]


_DIGITS = re.compile(r"(\d+)")


def natural_key(path: str) -> list:
    """Sort key that puts ``img2`` before ``img10``."""
    return [(0, int(tok), "") if tok.isdigit() else (1, 0, tok.lower())
            for tok in _DIGITS.split(path) if tok]


def group_by_class(paths: list[str], root: str) -> tuple[dict[str, list[str]], list[str]]:
    """Files exactly at ``root/<class>/<file>``; anything else under root is returned as ignored.

    Directory entries (ending in "/") register a class folder even when it is empty,
    so an empty class can be reported instead of silently vanishing.
    """
    prefix = root + "/" if root else ""
    classes: dict[str, list[str]] = {}
    ignored = []
    for p in paths:
        if not p.startswith(prefix) or p == prefix:
            continue
        rel = p[len(prefix):]
        parts = rel.rstrip("/").split("/")
        # Hidden folders, and the "__MACOSX" folder of "._" resource forks that archives
        # made on macOS carry, are never class folders.
        if parts[0].startswith(".") or parts[0] == MACOS_RESOURCE_DIR:
            continue
        if rel.endswith("/"):
            if len(parts) == 1:
                classes.setdefault(parts[0], [])
        elif len(parts) == 2 and is_image_path(p):
            classes.setdefault(parts[0], []).append(p)
        else:
            ignored.append(p)
    for name in classes:
        classes[name].sort(key=natural_key)
    return dict(sorted(classes.items())), ignored


def find_root(paths: list[str], candidates: tuple[str, ...]) -> str | None:
    """The first candidate prefix under which some image sits at ``<prefix>/<class>/<file>``."""
    images = [p for p in paths if is_image_path(p)]
    for cand in candidates:
        prefix = cand.strip("/") + "/" if cand else ""
        if any(p.startswith(prefix) and p[len(prefix):].count("/") == 1 for p in images):
            return cand.strip("/")
    return None


def auto_root(paths: list[str]) -> str | None:
    """For a generic class-per-folder set: the shallowest folder whose children hold images."""
    roots: dict[str, int] = {}
    for p in paths:
        if is_image_path(p):
            parts = p.split("/")
            if len(parts) >= 2:
                root = "/".join(parts[:-2])
                roots[root] = roots.get(root, 0) + 1
    if not roots:
        return None
    return min(roots, key=lambda r: (r.count("/") if r else -1, -roots[r]))
