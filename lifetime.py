"""Child processes that must not outlive whoever started them, even when it dies by SIGKILL
(which no signal handler sees): they watch their parent's pid."""

from __future__ import annotations

import os
import threading
import time

PARENT_POLL_S = 0.5


def wait_until_orphaned(parent: int, poll_s: float = PARENT_POLL_S) -> None:
    """Return once this process's parent is no longer `parent` (it exited or was killed)."""
    while os.getppid() == parent:
        time.sleep(poll_s)


def exit_when_orphaned() -> None:
    """End this process (exit code 1) from a daemon thread as soon as its current parent dies."""

    def watch(parent: int) -> None:
        wait_until_orphaned(parent)
        os._exit(1)

    threading.Thread(target=watch, args=(os.getppid(),), daemon=True).start()
