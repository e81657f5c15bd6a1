"""One rsdistill process at a time in a run directory.

A process that writes into a run directory (a run, a sweep, a comparison, a study, a
report, an export beside a model) holds an exclusive ``flock`` on ``<dir>/.rsdistill.lock``
while it does. The kernel drops the lock when the holder exits in any way, kill -9
included, so a lock file left behind by a killed run is stale by construction: the next
process simply takes it. A second process meanwhile gets one error line naming the
directory and the holder's pid (written into the lock file).

The holder removes the file when it is done. A process that opened the old file just
before (and so locked a file no longer in the directory) sees that the path now names
another file or none, and tries again.

Locks are per process and re-entrant: a study holding its directory may lock it again
through the sweep it runs. Under torchrun only the main process locks; the others write
nothing.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path
from typing import Iterator

from rsdistill.errors import BusyError, WriteError
from rsdistill.io import describe_os_error, remove_stale_temp_files, write_error
from rsdistill.runtime import distributed
from rsdistill.runtime.rundir import LOCK_FILE, RUN_MARKERS, is_project_file, project_dir_rule

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locking there
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

# Held by this process: resolved directory -> [fd of its lock file (None without
# locking support), nesting count].
_HELD: dict[str, list] = {}
_ATTEMPTS = 10


def _holder(lock_file: Path) -> str:
    try:
        pid = lock_file.read_text().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def _busy(directory: Path, lock_file: Path, flag: str | None) -> BusyError:
    other = f", or choose another {flag}" if flag else ""
    return BusyError(f"{directory} is in use by another rsdistill process{_holder(lock_file)}; "
                     f"wait for it to finish{other}")


def _acquire(directory: Path, flag: str | None) -> int | None:
    """The fd of the locked lock file; None where the filesystem has no locks."""
    lock_file = directory / LOCK_FILE
    for _ in range(_ATTEMPTS):
        try:
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            raise WriteError(f"cannot write in {directory}: {describe_os_error(exc)}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise _busy(directory, lock_file, flag) from None
            # A filesystem without locks (some network mounts): run unlocked, as before.
            log.debug("cannot lock %s (%s); running without the lock", lock_file, exc)
            return None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock_file, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if not same:  # the holder removed it as we opened it: take the current one
            os.close(fd)
            continue
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:  # a full disk: os's error names no file
            _release(directory, fd)
            where = f"choose another {flag}" if flag else "choose another folder"
            raise WriteError(f"cannot write the lock file {lock_file}: "
                             f"{describe_os_error(exc)}; make room there or {where}") from exc
        return fd
    raise _busy(directory, lock_file, flag)


def _release(directory: Path, fd: int | None) -> None:
    if fd is None:
        return
    try:
        os.unlink(directory / LOCK_FILE)
    except OSError:
        pass
    os.close(fd)


def _missing_parts(directory: Path) -> list[Path]:
    """``directory`` and those of its parents that do not exist, deepest first."""
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    return missing


@contextlib.contextmanager
def run_dir_lock(directory: str | Path, flag: str | None = "--out",
                 create: bool = True) -> Iterator[Path]:
    """Holds ``directory`` (created if missing) for this process; yields its path.

    Temporary files that killed writers left in it are removed once the lock is held.
    The folders this call created are removed again if nothing was written into them.
    ``flag``: the option that names the directory, for the error message. Without
    ``create`` a missing directory is not locked (the caller reports it).
    """
    directory = Path(directory).expanduser()
    if distributed.launched_rank() != 0 or fcntl is None or \
            (not create and not directory.is_dir()):
        yield directory
        return
    key = os.path.realpath(directory)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield directory
        finally:
            _HELD[key][1] -= 1
        return
    created = _missing_parts(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"cannot create {directory}: {describe_os_error(exc)}") from exc
    try:
        fd = _acquire(directory, flag)
    except BaseException:
        _remove_empty(created)
        raise
    _HELD[key] = [fd, 1]
    try:
        remove_stale_temp_files(directory)
        yield directory
    finally:
        del _HELD[key]
        _release(directory, fd)
        _remove_empty(created)


def _remove_empty(folders: list[Path]) -> None:
    """The folders a lock made, deepest first, while nothing was written into them."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break


def holds_run(directory: Path) -> bool:
    """Whether ``directory`` holds something rsdistill wrote (a run, sweep, study, ...)."""
    return any((Path(directory) / name).exists() for name in RUN_MARKERS)


def run_dir_lock_of(file: str | Path, flag: str | None = "--out"):
    """The lock of the folder ``file`` is written into, when that folder holds a run
    (an export or int8 model beside its model.pt); a no-op for any other folder."""
    folder = Path(file).expanduser().parent
    if folder.is_dir() and holds_run(folder):
        return run_dir_lock(folder, flag)
    return contextlib.nullcontext(folder)


# ----------------------------------------------------------------------------- --overwrite

def _lock_free(path: str) -> bool:
    """Whether nobody holds the lock file at ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _clear(directory: Path, ours, removed: list[Path], top: bool) -> None:
    lock = directory / LOCK_FILE
    if not top and fcntl is not None and lock.exists() and not _lock_free(str(lock)):
        raise _busy(directory, lock, "--out")
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            rule = project_dir_rule(directory, entry.name)
            if rule is not None:
                _clear(path, rule, removed, top=False)
                with contextlib.suppress(OSError):
                    path.rmdir()  # only when nothing else is in it
            continue
        if not ours(entry.name) or (top and entry.name == LOCK_FILE):
            continue
        try:
            path.unlink()
        except OSError as exc:
            raise write_error(path, exc) from exc
        removed.append(path)


def clear_project_files(directory: str | Path) -> list[Path]:
    """``--overwrite``: removes what rsdistill wrote in ``directory`` (locked by this
    process) and nothing else: its run, sweep, comparison and study files, those of its
    sub-runs (``seed<k>/``, ``gen<k>/``, members, a comparison's method folders, a study's
    teacher and sweep), its figures; folders left empty go too. Returns what was removed."""
    removed: list[Path] = []
    directory = Path(directory)
    if directory.is_dir():
        _clear(directory, is_project_file, removed, top=True)
    if removed:
        log.info("--overwrite: removed %d file(s) rsdistill wrote in %s", len(removed), directory)
    return removed
