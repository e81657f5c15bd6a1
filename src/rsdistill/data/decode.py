"""Decode every image once into uint8 tensors, one per requested size, in parallel.

Each image is decoded at full resolution and resized independently to every
size, so the tensor cached for a size never depends on which other sizes were
requested in the same pass (needed for cross-resolution teachers).
"""

from __future__ import annotations

import io
import os
import re
import warnings
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError

from rsdistill.data import pixels
from rsdistill.data.sources import ImageSource, RefusedFile
from rsdistill.runtime.processes import die_with_parent

# The exported models' preprocessing contract (export/contract.py) quotes these two.
RESAMPLE = Image.Resampling.BICUBIC
# 8-bit images are converted to this mode (palette, grey, CMYK, alpha -> RGB).
COLOR_MODE = "RGB"
# Bump when the decoding rules change, so caches rebuild. 2: 16-bit and float images
# scaled instead of clipped; multi-band TIFFs; refused special files and links.
DECODE_VERSION = 2
CHUNK = 128


@dataclass
class DecodeResult:
    arrays: dict[int, np.ndarray]  # size -> (N, 3, size, size) uint8
    ok: np.ndarray  # bool mask over the requested files
    errors: list[tuple[str, str]]  # (file, reason) of files that failed
    # note (pixels.NOTE_*) -> files that raised it, reported once per dataset
    notes: dict[str, list[str]] = field(default_factory=dict)


def _open_rgb(data: bytes) -> tuple[Image.Image, set[str]]:
    pillow_error: Exception | None = None
    try:
        with Image.open(io.BytesIO(data)) as img:
            if pixels.pillow_reads_correctly(img):
                img.load()
                return pixels.pillow_rgb(img)
    except (UnidentifiedImageError, ValueError, OSError) as exc:
        if not pixels.is_tiff(data):
            if isinstance(exc, UnidentifiedImageError):
                raise UnreadableImage("not an image in a known format, or corrupt") from None
            raise
        pillow_error = exc
    # TIFF layouts Pillow has no mode for (several 16-bit or float bands), or decodes
    # wrongly (16-bit bands in separate planes).
    try:
        return pixels.tifffile_rgb(data)
    except (pixels.UnsupportedImage, Image.DecompressionBombError):
        raise
    except ImportError:
        raise UnreadableImage("a TIFF layout Pillow cannot read; install tifffile "
                              "(pip install tifffile) to read it") from None
    except Exception as exc:  # tifffile raises many types for damaged files
        if "imagecodecs" in str(exc):
            raise UnreadableImage("a TIFF whose compression needs the imagecodecs package "
                                  "(pip install imagecodecs)") from None
        if pillow_error is None or isinstance(pillow_error, UnidentifiedImageError):
            raise UnreadableImage(f"unreadable TIFF, truncated or corrupt ({_plain(exc)})") \
                from None
        raise UnreadableImage(f"unreadable TIFF ({_plain(pillow_error)})") from None


def decode_one_noted(data: bytes, sizes: tuple[int, ...]) -> tuple[list[np.ndarray], set[str]]:
    """The image ``data`` at each of ``sizes`` (3×s×s uint8) and the notes it raised."""
    # Readers warn on stderr about damaged files (an error here names them instead) and
    # about large ones (the decompression-bomb limit still raises).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rgb, notes = _open_rgb(data)
    out = []
    for s in sizes:
        resized = rgb if rgb.size == (s, s) else rgb.resize((s, s), RESAMPLE)
        out.append(np.asarray(resized, dtype=np.uint8).transpose(2, 0, 1))
    return out, notes


def decode_one(data: bytes, sizes: tuple[int, ...]) -> list[np.ndarray]:
    return decode_one_noted(data, sizes)[0]


class UnreadableImage(ValueError):
    """Image bytes no reader accepts; the message is the reason shown to the user."""


# Reading a zip's central directory costs ~0.5 s for EuroSAT's 27,000 entries, so each
# worker process opens a given source once, not once per chunk. Only workers use this
# memo (their pool lives for one decode_images call): in the main process it would keep
# a stale handle on an archive that is later rewritten at the same path, and forked
# workers would inherit that handle and share its file offset.
_OPENED: dict[tuple[str, str], ImageSource] = {}

# What a damaged image or archive member raises while being read or decoded.
DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError,
                 zipfile.BadZipFile, zlib.error, Image.DecompressionBombError, RefusedFile)

_REPR = re.compile(r"<[^<>]* object at 0x[0-9a-fA-F]+>")


def _plain(exc: BaseException) -> str:
    """First line of an error, without reprs of Python objects (a BytesIO's address)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return _REPR.sub("the data", first)


def _opened(source: ImageSource) -> ImageSource:
    key = (source.kind, str(source))
    if key not in _OPENED:
        _OPENED[key] = source.opener()
    return _OPENED[key]


def _decode_chunk_in_worker(source: ImageSource, files: list[str], sizes: tuple[int, ...]):
    return _decode_chunk(_opened(source), files, sizes)


def _decode_chunk(source: ImageSource, files: list[str], sizes: tuple[int, ...]):
    arrays = {s: np.zeros((len(files), 3, s, s), dtype=np.uint8) for s in sizes}
    ok = np.zeros(len(files), dtype=bool)
    errors = []
    notes: dict[str, list[str]] = {}
    for i, rel in enumerate(files):
        try:
            views, raised = decode_one_noted(source.read(rel), sizes)
        except RefusedFile as exc:
            errors.append((rel, str(exc)))
            continue
        except DECODE_ERRORS as exc:
            errors.append((rel, _plain(exc)))
            continue
        for s, v in zip(sizes, views):
            arrays[s][i] = v
        for note in raised:
            notes.setdefault(note, []).append(rel)
        ok[i] = True
    return arrays, ok, errors, notes


# ----------------------------------------------------------------------------- workers

def worker_pool(workers: int) -> ProcessPoolExecutor:
    """Decode workers that die with this process (``runtime/processes.py``)."""
    return ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent,
                               initargs=(os.getpid(),))


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def decode_images(source: ImageSource, files: list[str], sizes: tuple[int, ...],
                  workers: int | None = None, progress=None) -> DecodeResult:
    """Decode ``files`` from ``source`` to each of ``sizes``; failures are collected, not raised."""
    workers = default_workers() if workers is None else workers
    # Few, large chunks per worker keep pickling and scheduling overhead small.
    chunk = max(CHUNK, -(-len(files) // (max(workers, 1) * 8)))
    chunks = [files[i:i + chunk] for i in range(0, len(files), chunk)]
    results = []
    if workers <= 1 or len(chunks) <= 1:
        for part in chunks:
            results.append(_decode_chunk(source, part, sizes))
            if progress is not None:
                progress(len(part))
    else:
        with worker_pool(workers) as pool:
            futures = [pool.submit(_decode_chunk_in_worker, source, part, sizes) for part in chunks]
            for fut, part in zip(futures, chunks):
                results.append(fut.result())
                if progress is not None:
                    progress(len(part))
    if not results:
        empty = {s: np.zeros((0, 3, s, s), dtype=np.uint8) for s in sizes}
        return DecodeResult(empty, np.zeros(0, dtype=bool), [])
    arrays = {s: np.concatenate([r[0][s] for r in results]) for s in sizes}
    ok = np.concatenate([r[1] for r in results])
    errors = [e for r in results for e in r[2]]
    notes: dict[str, list[str]] = {}
    for r in results:
        for note, names in r[3].items():
            notes.setdefault(note, []).extend(names)
    return DecodeResult(arrays, ok, errors, notes)
