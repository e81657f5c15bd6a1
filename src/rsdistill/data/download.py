"""Fetch a dataset archive with a progress bar and an md5 check, atomically.

The archive is written to a temporary file beside it (``.<name>.<pid>.<random>.tmp``,
see :mod:`rsdistill.io`) and renamed to its own name only once every byte has arrived
and the md5 matches. A failed check, a dropped connection or Ctrl-C removes the
temporary file; a killed process (kill -9, power loss) leaves it, and the next
download of the same archive removes it before it starts. Nothing is resumed: a
partial file is never trusted.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from rsdistill.data.specs import DatasetSpec, Download
from rsdistill.errors import DataError
from rsdistill.io import atomic_write_stream, describe_os_error, remove_stale_temp_files

log = logging.getLogger(__name__)

_BLOCK = 1 << 20
_TIMEOUT_S = 60


def md5sum(path: Path, chunk: int = _BLOCK) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _get_by_hand(dest: Path, page: str | None, url: str) -> str:
    return (f"without network, download it from {page or url} on a machine that has "
            f"network and put it at {dest}")


def _open(url: str, dest: Path, page: str | None):
    try:
        return urllib.request.urlopen(url, timeout=_TIMEOUT_S)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"cannot download {url}: {reason}; {_get_by_hand(dest, page, url)}"
                        ) from None


def _check_free_space(dest: Path, length: int | None) -> None:
    if not length:
        return
    try:
        free = shutil.disk_usage(dest.parent).free
    except OSError:
        return
    if free < length:
        raise DataError(f"not enough space for {dest.name} ({mib(length)}) in {dest.parent}: "
                        f"{mib(free)} free; free some space or choose another --data-root")


def download_file(url: str, dest: Path, md5: str | None = None, progress: bool = True,
                  size: int | None = None, page: str | None = None) -> Path:
    """Download ``url`` to ``dest``; the file appears only once complete and verified.

    ``size``: the expected byte count when the server sends none; ``page``: where a
    user without network gets the file by hand (named in the error).
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the data root {dest.parent}: {describe_os_error(exc)}; "
                        "pass --data-root DIR for a writable folder") from None
    stale = remove_stale_temp_files(dest.parent, target=dest.name)
    if stale:
        log.info("removed %d partial download(s) of %s that an interrupted run left",
                 len(stale), dest.name)
    response = _open(url, dest, page)
    with response:
        length = int(response.headers.get("Content-Length") or 0) or None
        _check_free_space(dest, length)

        def receive(out) -> None:
            h = hashlib.md5()
            got = 0
            with tqdm(total=length or size, unit="B", unit_scale=True, desc=dest.name,
                      disable=None if progress else True) as bar:
                while True:
                    try:
                        block = response.read(_BLOCK)
                    except (OSError, http.client.HTTPException) as exc:
                        raise _interrupted(url, got, length, exc) from None
                    if not block:
                        break
                    out.write(block)
                    h.update(block)
                    got += len(block)
                    bar.update(len(block))
            # http.client ends a body cut short by the server without an error: only
            # the count against Content-Length tells.
            if length is not None and got != length:
                raise _interrupted(url, got, length, "the connection closed early")
            if md5 is not None and h.hexdigest() != md5:
                raise DataError(
                    f"md5 mismatch for {url}: expected {md5}, got {h.hexdigest()}; the "
                    f"download is corrupt or changed upstream, nothing was saved; "
                    f"{_get_by_hand(dest, page, url)}")

        try:
            atomic_write_stream(dest, receive)
        except OSError as exc:  # network errors became DataError above: this is the disk
            raise DataError(f"cannot write {dest}: {describe_os_error(exc)}; nothing was "
                            "saved: free some space or choose another --data-root") from None
    return dest


def _interrupted(url: str, got: int, length: int | None, why: object) -> DataError:
    of = f" of {mib(length)}" if length else ""
    return DataError(f"download of {url} stopped after {mib(got)}{of} ({why}); nothing was "
                     "saved: run the command again to start over")


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
            size = f" ({mib(item.size)})" if item.size else ""
            log.info("downloading %s%s from %s to %s", item.filename, size, item.url, dest)
            return download_file(item.url, dest, item.md5, progress=progress, size=item.size,
                                 page=spec.homepage or None)
        except DataError as exc:
            last_error = exc
    assert last_error is not None
    raise last_error
