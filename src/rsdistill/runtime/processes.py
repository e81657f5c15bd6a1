"""Worker processes that never outlive the process that started them.

A worker killed along with nothing else would otherwise wait on its task pipe forever
(every worker holds the write end too, so no EOF comes), or, worse, finish a task and
keep writing files while a resumed run works in the same folder. Linux kills the worker
the moment its parent dies (PR_SET_PDEATHSIG); everywhere, a thread checks every second
that the parent lives and exits otherwise.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

from rsdistill.io import pid_alive

# A worker whose parent is gone exits within this many seconds (at once on Linux).
PARENT_POLL_S = 1.0
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Call first thing in a worker (e.g. as a pool initializer) with the parent's pid."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    first_parent = os.getppid()

    def parent_gone() -> bool:
        return os.getppid() != first_parent or not pid_alive(parent_pid)

    if parent_gone():  # it died before the death signal was armed
        os._exit(1)

    def watch() -> None:
        while not parent_gone():
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="rsdistill-parent-watch", daemon=True).start()
