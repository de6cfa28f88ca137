"""Child processes that must not outlive whoever started them, even when it dies by SIGKILL
(which no signal handler sees): they watch their parent's pid, or the pid of the process that
started them through an intermediary (a forkserver pool worker's parent is the forkserver, which
outlives a killed main process)."""

from __future__ import annotations

import os
import threading
import time

from mksgn.processes import alive

PARENT_POLL_S = 0.5


def wait_until_orphaned(parent: int, poll_s: float = PARENT_POLL_S) -> None:
    """Return once this process's parent is no longer `parent` (it exited or was killed)."""
    while os.getppid() == parent:
        time.sleep(poll_s)


def wait_until_gone(pid: int, poll_s: float = PARENT_POLL_S) -> None:
    """Return once process `pid` (not necessarily our parent) has ended."""
    while alive({pid}):
        time.sleep(poll_s)


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
