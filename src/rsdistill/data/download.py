"""Fetch a dataset archive with a progress bar and an md5 check, atomically."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from rsdistill.data.specs import DatasetSpec, Download
from rsdistill.errors import DataError

log = logging.getLogger(__name__)


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def download_file(url: str, dest: Path, md5: str | None = None, progress: bool = True) -> Path:
    """Download ``url`` to ``dest``; the file appears only once complete and verified."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=60)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                raise DataError(
                    f"cannot download {url}: {reason}; without network, download it elsewhere "
                    f"and put it at {dest}"
                ) from None
            with response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                          disable=None if progress else True) as bar:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        out.write(block)
                        bar.update(len(block))
        if md5 is not None:
            got = md5sum(Path(tmp))
            if got != md5:
                raise DataError(
                    f"md5 mismatch for {url}: expected {md5}, got {got}; the download is "
                    "corrupt or changed upstream — nothing was saved"
                )
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def download_dataset(spec: DatasetSpec, data_root: Path, progress: bool = True,
                     downloads: tuple[Download, ...] | None = None) -> Path:
    options = spec.downloads if downloads is None else downloads
    if not options:
        raise DataError(
            f"{spec.title} cannot be downloaded automatically. {spec.manual_download or ''}"
            f" and put {spec.archives[0] if spec.archives else 'the archive'} under {data_root}".strip()
        )
    last_error: DataError | None = None
    for item in options:
        dest = Path(data_root) / item.filename
        if dest.is_file() and (item.md5 is None or md5sum(dest) == item.md5):
            return dest
        try:
            log.info("downloading %s to %s", item.url, dest)
            return download_file(item.url, dest, item.md5, progress=progress)
        except DataError as exc:
            last_error = exc
    assert last_error is not None
    raise last_error
