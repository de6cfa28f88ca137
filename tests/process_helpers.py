"""Running `mksgn` as a child process to signal it, watching its Lava session, and output folders
that are full or read-only (for the fault-injection tests)."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from mksgn.targets.lava import processes_where

MKSGN = str(Path(sys.executable).with_name("mksgn"))


def start_mksgn(*args: str) -> subprocess.Popen:
    """`mksgn ARGS` as a child process with captured text output."""
    return subprocess.Popen(
        [MKSGN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_until(condition: Callable[[], object], timeout_s: float, what: str) -> object:
    """Poll `condition` until it is truthy; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def lava_session(command: subprocess.Popen, members: int = 3, timeout_s: float = 90) -> int:
    """The session id of the command's Lava worker, once it runs `members` processes."""
    sessions = wait_until(
        lambda: processes_where("ppid", command.pid), timeout_s, "the Lava worker to start"
    )
    session = sessions[0]
    wait_until(
        lambda: len(processes_where("session", session)) >= members,
        timeout_s,
        "Lava's process models",
    )
    # Started means running: the member count has stopped changing for a second.
    counts: list[int] = []

    def settled() -> bool:
        counts.append(len(processes_where("session", session)))
        return len(counts) > 10 and len(set(counts[-10:])) == 1

    wait_until(settled, timeout_s, "Lava's start-up to finish")
    return session


def lava_process_models(session: int) -> list[int]:
    """The worker's children that run Lava process models (not multiprocessing's tracker)."""
    return [
        pid
        for pid in processes_where("ppid", session)
        if "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    ]


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (children, their children, ...)."""
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        children = processes_where("ppid", frontier.pop())
        frontier += [c for c in children if c not in found]
        found.update(children)
    return found


def alive(pids: set[int]) -> set[int]:
    """The pids that still exist and are not zombies."""
    living = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat[stat.rindex(")") + 2] != "Z":
                living.add(pid)
    return living


def shm() -> set[str]:
    """Current /dev/shm entries."""
    return set(os.listdir("/dev/shm"))


def leftovers(folder: Path) -> list[str]:
    """Temporary outputs (dot-prefixed names from mksgn.atomic) anywhere below `folder`."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


def _mount_tmpfs(folder: Path, options: str) -> bool:
    """Mount a tmpfs on `folder` (root only); False when that is not possible here."""
    if os.geteuid() != 0:
        return False
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    return result.returncode == 0


@contextlib.contextmanager
def full_disk(folder: Path, size_kb: int = 12) -> Iterator[Path]:
    """A folder where writing more than about `size_kb` kB fails: a tiny tmpfs (ENOSPC) when
    this runs as root, otherwise a file-size limit on this process (EFBIG)."""
    folder.mkdir(parents=True, exist_ok=True)
    if _mount_tmpfs(folder, f"size={size_kb}k"):
        try:
            yield folder
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        return
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (size_kb * 1024, limits[1]))
    try:
        yield folder
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, previous)


@contextlib.contextmanager
def read_only_dir(folder: Path) -> Iterator[Path]:
    """A folder nothing can be written to: a read-only tmpfs as root (root ignores mode bits),
    otherwise mode 0555."""
    folder.mkdir(parents=True, exist_ok=True)
    if _mount_tmpfs(folder, "size=64k,ro"):
        try:
            yield folder
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        return
    folder.chmod(0o555)
    try:
        yield folder
    finally:
        folder.chmod(0o755)
