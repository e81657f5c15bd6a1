"""Decode every image once into uint8 tensors, one per requested size, in parallel.

Each image is decoded at full resolution and resized independently to every
size, so the tensor cached for a size never depends on which other sizes were
requested in the same pass (needed for cross-resolution teachers).
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from rsdistill.data.sources import ImageSource

# The exported models' preprocessing contract (export/contract.py) quotes these two.
RESAMPLE = Image.Resampling.BICUBIC
COLOR_MODE = "RGB"
DECODE_VERSION = 1  # bump when the decoding rules change, so caches rebuild
CHUNK = 128


@dataclass
class DecodeResult:
    arrays: dict[int, np.ndarray]  # size -> (N, 3, size, size) uint8
    ok: np.ndarray  # bool mask over the requested files
    errors: list[tuple[str, str]]  # (file, reason) of files that failed


def decode_one(data: bytes, sizes: tuple[int, ...]) -> list[np.ndarray]:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        rgb = img.convert(COLOR_MODE)
    out = []
    for s in sizes:
        resized = rgb if rgb.size == (s, s) else rgb.resize((s, s), RESAMPLE)
        out.append(np.asarray(resized, dtype=np.uint8).transpose(2, 0, 1))
    return out


# Reading a zip's central directory costs ~0.5 s for EuroSAT's 27,000 entries, so each
# worker process opens a given source once, not once per chunk. Only workers use this
# memo (their pool lives for one decode_images call): in the main process it would keep
# a stale handle on an archive that is later rewritten at the same path, and forked
# workers would inherit that handle and share its file offset.
_OPENED: dict[str, ImageSource] = {}

# What a damaged image or archive member raises while being read or decoded.
DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError,
                 zipfile.BadZipFile, zlib.error, Image.DecompressionBombError)


def failure_reason(exc: BaseException) -> str:
    """One line on why an image failed; Pillow's "cannot identify image file" names the
    in-memory buffer it read (a repr), which means nothing to a user."""
    if isinstance(exc, UnidentifiedImageError):
        return "not an image format Pillow can read"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _opened(source: ImageSource) -> ImageSource:
    key = repr(source)
    if key not in _OPENED:
        _OPENED[key] = source.opener()
    return _OPENED[key]


def _decode_chunk_in_worker(source: ImageSource, files: list[str], sizes: tuple[int, ...]):
    return _decode_chunk(_opened(source), files, sizes)


def _decode_chunk(source: ImageSource, files: list[str], sizes: tuple[int, ...]):
    arrays = {s: np.zeros((len(files), 3, s, s), dtype=np.uint8) for s in sizes}
    ok = np.zeros(len(files), dtype=bool)
    errors = []
    for i, rel in enumerate(files):
        try:
            views = decode_one(source.read(rel), sizes)
        except DECODE_ERRORS as exc:
            errors.append((rel, failure_reason(exc)))
            continue
        for s, v in zip(sizes, views):
            arrays[s][i] = v
        ok[i] = True
    return arrays, ok, errors


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
        with ProcessPoolExecutor(max_workers=workers) as pool:
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
    return DecodeResult(arrays, ok, errors)
