"""Atomic writes: a reader never sees a half-written result, cache or checkpoint.

A write goes to ``.<name>.<pid>.<random>.tmp`` beside the target, held under an
``flock`` while it is written, and is renamed over the target when complete. A
process killed mid-write (kill -9, power loss) leaves that temporary file behind;
:func:`remove_stale_temp_files` removes such leftovers, and only those whose writer
is gone: the writer's pid (in the name) is dead on this machine *and* nobody holds
the lock. The pid covers the instant between creating the file and locking it; the
lock covers writers the pid cannot speak for (another container or pid namespace
sharing the folder), since the kernel drops a dead process's locks.
"""

from __future__ import annotations

import errno
import fnmatch
import json
import logging
import os
import re
import signal
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

from rsdistill.errors import RsdistillError, WriteError

try:  # POSIX only; elsewhere the pid alone decides (see remove_stale_temp_files).
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

# ".<target name>.<writer pid>.<mkstemp's random part>.tmp"
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")
# Temporary files of releases before the pid was part of the name: no pid and no lock
# to consult, so only their age tells; nothing takes a day to write.
_OLD_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")
_OLD_TEMP_AGE_S = 24 * 3600


def _atomic(path: Path, write: Callable[[Any], None], mode: str) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                   dir=path.parent)
    except OSError as exc:
        raise write_error(path, exc) from exc
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:  # a filesystem without locks: the pid in the name still holds
                pass
        # mkstemp creates 0600; results must be readable like any file the user writes.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, mode) as fh:
            write(fh)
            kill_point(f"write:{path.name}")  # the temporary file exists, half flushed
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        # A failure of the write itself (full disk, read-only folder) names the file; an
        # error the writer raised on purpose (a dropped download) already says what to do.
        if isinstance(exc, Exception) and not isinstance(exc, RsdistillError) \
                and os_error_of(exc) is not None:
            raise write_error(path, exc) from exc
        raise


def write_error(path: Path, exc: BaseException) -> WriteError:
    """``cannot write PATH: No space left on device`` for a failed write of ``path``."""
    cause = os_error_of(exc)
    reason = describe_os_error(cause) if cause is not None else str(exc)
    return WriteError(f"cannot write {path}: {reason}")


def atomic_write_text(path: Path, text: str) -> None:
    _atomic(path, lambda fh: fh.write(text), "w")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic(path, lambda fh: fh.write(data), "wb")


def atomic_torch_save(obj: Any, path: Path) -> None:
    _atomic(path, lambda fh: torch.save(obj, fh), "wb")


def atomic_write_stream(path: Path, write: Callable[[Any], None]) -> None:
    """``write(fh)`` fills a binary temporary file; ``path`` appears only if it returns.
    An exception from ``write`` (a failed check, a dropped connection) leaves ``path``
    as it was."""
    _atomic(path, write, "wb")


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    with open(path) as fh:
        return json.load(fh)


# ----------------------------------------------------------------------------- leftovers

def is_temp_file_name(name: str) -> bool:
    """Whether ``name`` is one of the temporary files atomic writes make."""
    return bool(_TEMP_NAME.match(name) or _OLD_TEMP_NAME.match(name))


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists here (one of another user counts as alive)."""
    if pid <= 0:
        return True  # never a writer's pid; err on the side of keeping its file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unlock_free(path: Path) -> int | None:
    """An fd holding the lock of ``path``, or None when a live writer holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def remove_stale_temp_files(directory: Path, target: str | None = None) -> list[Path]:
    """Remove the temporary files that killed writers left in ``directory``.

    ``target``: only those of writers of that file name, in the current naming (a folder
    the user owns, such as a data root, may hold other programs' hidden ``.tmp`` files).
    Returns what was removed. Never raises: a folder that cannot be listed or written
    (read-only, vanished) simply keeps its leftovers.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        if target is not None and (match is None or match["target"] != target):
            continue
        if match is None:
            if not (_OLD_TEMP_NAME.match(entry.name) and now - st.st_mtime > _OLD_TEMP_AGE_S):
                continue
        elif pid_alive(int(match["pid"])):
            continue
        fd = _unlock_free(Path(entry.path))
        if fd is None:
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError as exc:
            log.debug("could not remove stale temporary file %s: %s", entry.path, exc)
        finally:
            os.close(fd)
    return removed


# ----------------------------------------------------------------------------- failures

def os_error_of(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``, if any: torch.save reports a failed write (disk full)
    as a RuntimeError whose context is the OSError raised by the file."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def describe_os_error(exc: OSError) -> str:
    """``Read-only file system``-style cause, without Python's "[Errno 30]" framing."""
    if exc.strerror:
        return exc.strerror
    if exc.errno:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


# What torch.load(weights_only=True) raises, mapped to what it means for the user. Its
# own text is never shown: it is pages long and suggests disabling weights_only.
_PICKLE_REFUSED = "Weights only load failed"


def load_failure_reason(exc: BaseException) -> tuple[str, str]:
    """(``"unsafe"`` or ``"invalid"``, a short reason) for a failed weights-only load."""
    text = str(exc)
    if _PICKLE_REFUSED in text:
        return "unsafe", ("it holds pickled Python objects, not just tensors, and loading "
                          "those could run code")
    os_err = os_error_of(exc)
    if os_err is not None and os_err.errno not in (None, 0, errno.EIO) and os_err.strerror:
        return "invalid", f"cannot read it ({describe_os_error(os_err)})"
    if isinstance(exc, EOFError) or "central directory" in text or "failed reading" in text:
        return "invalid", "the file is empty, truncated or corrupt"
    return "invalid", "it is not a file written by torch.save, or it is corrupt"


# ----------------------------------------------------------------------------- fault injection
# For the fault-injection tests and bench/faults.py; unset in normal use, where a point
# costs one environment lookup. RSDISTILL_KILL_AT="<point>@<n>" kills this process with
# SIGKILL the n-th time it reaches a point matching <point> (fnmatch, e.g. "step",
# "write:last.pt", "write:*px-*.pt"); RSDISTILL_FAULT_TRACE=<file> appends every point
# reached ("<pid> <point>" a line), from which a test draws points to kill at.
KILL_ENV = "RSDISTILL_KILL_AT"
TRACE_ENV = "RSDISTILL_FAULT_TRACE"
_kill_hits: dict[str, int] = {}


def kill_point(name: str) -> None:
    kill, trace = os.environ.get(KILL_ENV), os.environ.get(TRACE_ENV)
    if trace:
        with open(trace, "a") as fh:
            fh.write(f"{os.getpid()} {name}\n")
    if not kill:
        return
    pattern, _, count = kill.rpartition("@")
    if fnmatch.fnmatchcase(name, pattern):
        _kill_hits[pattern] = _kill_hits.get(pattern, 0) + 1
        if _kill_hits[pattern] == int(count):
            os.kill(os.getpid(), signal.SIGKILL)
