"""Child processes that must not outlive whoever started them, even when it dies by SIGKILL
(which no signal handler sees): they watch their parent's pid, or the pid of the process that
started them through an intermediary (a forkserver pool worker's parent is the forkserver, which
outlives a killed main process)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

from mksgn.processes import alive

PARENT_POLL_S = 0.5
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

# Set once this process holds state whose teardown can hang (see skip_finalization_on_error).
_finalization_unsafe = threading.Event()


def wait_until_orphaned(parent: int, poll_s: float = PARENT_POLL_S) -> None:
    """Return once this process's parent is no longer `parent` (it exited or was killed)."""
    while os.getppid() == parent:
        time.sleep(poll_s)


def wait_until_gone(pid: int, poll_s: float = PARENT_POLL_S) -> None:
    """Return once process `pid` (not necessarily our parent) has ended."""
    while alive({pid}):
        time.sleep(poll_s)


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent (pid `parent`) ends.

    The kernel delivers this even while this process is stuck in native code holding the GIL,
    where a watching thread (exit_when_orphaned) could never run.
    """
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def exit_when_orphaned(owner: int | None = None) -> None:
    """End this process (exit code 1) from a daemon thread as soon as `owner` dies: the given
    pid, or by default this process's current parent."""
    if owner is None:
        watch, pid = wait_until_orphaned, os.getppid()
    else:
        watch, pid = wait_until_gone, owner

    def watch_then_exit() -> None:
        watch(pid)
        os._exit(1)

    threading.Thread(target=watch_then_exit, daemon=True).start()


def skip_finalization_on_error() -> None:
    """Have end_process skip the interpreter's finalization when this process ends with an error.

    A torchrun worker whose peer died hung in finalization (rank 0 in a fresh clone: pybind11
    waiting for the GIL while freeing a tensor) after it had reported the error; every output is
    written atomically, so an error exit loses nothing by skipping it.
    """
    _finalization_unsafe.set()


def end_process(code: int) -> None:
    """Exit with `code`: through SystemExit, or with os._exit after an error once
    skip_finalization_on_error was called (standard streams flushed first)."""
    if code != 0 and _finalization_unsafe.is_set():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
