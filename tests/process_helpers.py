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

from mksgn.benchmarks.support.process_probes import started_lava_session
from mksgn.processes import alive

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
    session = started_lava_session(command.pid, members, timeout_s)
    assert session is not None, f"no Lava session of {members} processes within {timeout_s:.0f} s"
    return session


def stop(process: subprocess.Popen) -> None:
    """Kill a child and reap it: a zombie child would fail later tests' no-children checks."""
    process.kill()
    process.wait()


def assert_killing_ends_the_child(owner: subprocess.Popen, pid_file: Path) -> None:
    """Once the child has written its pid to `pid_file` and lives on, SIGKILL `owner`: the
    child must exit within 10 s."""
    try:
        child = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), 60, "child"))
        time.sleep(1)
        assert alive({child}), "the child exited while its owner lived"
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
        wait_until(lambda: not alive({child}), 10, "the orphaned child to exit")
    finally:
        stop(owner)


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
