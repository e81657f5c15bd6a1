"""Where images come from: an extracted folder tree or a zip archive, read in place.

A source lists relative POSIX paths and returns the bytes of one; decoding and
layout rules live elsewhere, so a zip and a folder behave identically.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rsdistill.errors import DataError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})
MACOS_RESOURCE_DIR = "__MACOSX"
MAX_IMAGE_BYTES_ENV = "RSDISTILL_MAX_IMAGE_BYTES"
# Far above any scene image (UC Merced TIFFs are ~200 kB, AID JPEGs ~100 kB), far below
# what would exhaust memory with one image in flight per decode worker.
DEFAULT_MAX_IMAGE_BYTES = 256 * 1024 * 1024


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


class RefusedFile(Exception):
    """An entry that is never read: not a regular file, a link leaving the data root, or
    over the size limit. Decoding reports it like a corrupt image (named; skipped with
    --skip-corrupt)."""


def max_image_bytes() -> int:
    """Largest image file read (bytes): $RSDISTILL_MAX_IMAGE_BYTES, else 256 MiB."""
    text = os.environ.get(MAX_IMAGE_BYTES_ENV)
    if not text:
        return DEFAULT_MAX_IMAGE_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise DataError(f"{MAX_IMAGE_BYTES_ENV} must be a positive number of bytes, got {text!r}")
    return value


def _too_large(size: int, limit: int) -> str:
    return (f"{size:,} bytes, over the per-image limit of {limit:,} bytes "
            f"(set {MAX_IMAGE_BYTES_ENV} to raise it)")


_SPECIAL_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
                  (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                  (stat.S_ISDIR, "a directory"))


def _not_regular(mode: int) -> str:
    kind = next((name for test, name in _SPECIAL_KINDS if test(mode)), "a special file")
    return f"{kind}, not a regular file"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class FolderSource:
    """A folder tree. Links are followed while they stay inside the folder; anything else
    that is not a regular file is listed as refused and never opened (a FIFO named
    ``x.jpg`` would block the reader forever, ``/dev/zero`` never ends)."""

    kind = "folder"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.max_bytes = max_image_bytes()
        self._files: list[str] | None = None
        self._stats: dict[str, tuple[int, int]] = {}
        # Relative path -> why it is not read; folders end in "/".
        self.refused: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"FolderSource({str(self.root)!r})"

    def __str__(self) -> str:
        return str(self.root)

    def location(self, rel: str) -> str:
        """A path the user can open: the file or folder ``rel`` inside this source."""
        return str(self.root / rel) if rel else str(self.root)

    def __getstate__(self) -> dict:
        # Worker processes need what read() consults, not the whole listing.
        return {**self.__dict__, "_files": None, "_stats": {}}

    def list_files(self) -> list[str]:
        # Locating, discovering and fingerprinting all need the listing; walk the tree once
        # per source object (a new object is made for every load, so changes are seen).
        if self._files is not None:
            return self._files
        root_real = os.path.realpath(self.root)
        out: list[str] = []
        self._walk(self.root, "", root_real, (root_real,), out)
        self._files = out
        return out

    def _walk(self, folder: Path, prefix: str, root_real: str, ancestors: tuple[str, ...],
              out: list[str]) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise DataError(f"cannot list folder {folder}: {exc.strerror or exc}") from None
        for entry in entries:
            if entry.name.startswith(".") and entry.is_dir():
                continue  # hidden folders are never class folders; not even looked into
            rel = prefix + entry.name
            real = os.path.realpath(entry.path) if entry.is_symlink() else None
            if real is not None and not _inside(real, root_real):
                self._refuse(rel, entry, f"a link to {real}, outside the data folder {self.root}",
                             out)
                continue
            try:
                st = os.stat(entry.path)
            except OSError as exc:
                self._refuse(rel, entry, "a broken link" if real is not None
                             else f"unreadable ({exc.strerror or exc})", out)
                continue
            if stat.S_ISDIR(st.st_mode):
                here = real or os.path.realpath(entry.path)
                if here in ancestors:  # a link back up the tree: listed once, not forever
                    continue
                out.append(rel + "/")
                self._walk(Path(entry.path), rel + "/", root_real, (*ancestors, here), out)
            elif not stat.S_ISREG(st.st_mode):
                self._refuse(rel, entry, _not_regular(st.st_mode), out)
            elif st.st_size > self.max_bytes:
                self._refuse(rel, entry, _too_large(st.st_size, self.max_bytes), out)
            else:
                self._stats[rel] = (st.st_size, st.st_mtime_ns)
                out.append(rel)

    def _refuse(self, rel: str, entry: os.DirEntry, reason: str, out: list[str]) -> None:
        # A refused file stays in the listing, so it is named when its class is decoded (and
        # skipped like a corrupt image); a refused folder is left out, its files never
        # looked at, and reported by refused_folders().
        if entry.is_dir():
            self.refused[rel + "/"] = reason
        else:
            self.refused[rel] = reason
            out.append(rel)

    def refused_folders(self) -> dict[str, str]:
        return {k: v for k, v in self.refused.items() if k.endswith("/")}

    def fingerprint(self, files: list[str]) -> str:
        h = hashlib.sha256()
        for rel in sorted(f for f in files if not f.endswith("/")):
            if rel in self.refused:
                h.update(f"{rel}\0refused {self.refused[rel]}\n".encode())
                continue
            size, mtime = self._stats.get(rel) or _size_mtime(self.root / rel)
            h.update(f"{rel}\0{size}\0{mtime}\n".encode())
        return h.hexdigest()

    def read(self, rel: str) -> bytes:
        if rel in self.refused:
            raise RefusedFile(self.refused[rel])
        # O_NONBLOCK: should the file have been swapped for a FIFO since it was listed,
        # opening it returns at once instead of waiting for a writer; fstat then refuses it.
        fd = os.open(self.root / rel, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise RefusedFile(_not_regular(st.st_mode))
            data = fh.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise RefusedFile(_too_large(len(data), self.max_bytes))
        return data

    def opener(self) -> "FolderSource":
        return self


def _size_mtime(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


class ZipSource:
    kind = "zip"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.max_bytes = max_image_bytes()
        self._zip: zipfile.ZipFile | None = None
        self._files: list[str] | None = None
        self.refused: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"ZipSource({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    def location(self, rel: str) -> str:
        """``/path/archive.zip:member``: the archive and the member inside it."""
        return f"{self.path}:{rel}" if rel else str(self.path)

    def __getstate__(self) -> dict:
        # Worker processes reopen the archive themselves; an open handle does not pickle.
        return {**self.__dict__, "_zip": None, "_files": None}

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
            if not info.is_dir():
                reason = self._refusal(info)
                if reason:
                    self.refused[info.filename] = reason
        self._files = names
        return names

    def _refusal(self, info: zipfile.ZipInfo) -> str | None:
        if stat.S_ISLNK(info.external_attr >> 16):
            return "a symbolic link stored in the archive, not an image"
        if info.file_size > self.max_bytes:
            return _too_large(info.file_size, self.max_bytes)
        return None

    def refused_folders(self) -> dict[str, str]:
        return {}

    def fingerprint(self, files: list[str]) -> str:
        z = self._open()
        h = hashlib.sha256()
        for rel in sorted(f for f in files if not f.endswith("/")):
            info = z.getinfo(rel)
            h.update(f"{rel}\0{info.file_size}\0{info.CRC}\n".encode())
        return h.hexdigest()

    def read(self, rel: str) -> bytes:
        reason = self.refused.get(rel) or self._refusal(self._open().getinfo(rel))
        if reason:
            raise RefusedFile(reason)
        return self._open().read(rel)

    def opener(self) -> "ZipSource":
        fresh = ZipSource(self.path)
        fresh.refused = dict(self.refused)
        return fresh


ImageSource = FolderSource | ZipSource


def input_location(source: ImageSource, rel: str) -> str:
    """``rel`` inside ``source`` as an absolute location: the one name of an image that
    'rsdistill predict' and 'evaluate --predictions' both write, so their rows join."""
    return source.location(rel) if Path(str(source)).is_absolute() else \
        type(source)(Path(str(source)).absolute()).location(rel)


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
