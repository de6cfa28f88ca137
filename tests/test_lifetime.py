"""A process that called exit_when_orphaned ends soon after its parent is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from process_helpers import stop, wait_until

from mksgn.processes import alive

CHILD = "from mksgn.lifetime import exit_when_orphaned; import time; exit_when_orphaned(); time.sleep(60)"


def test_child_exits_when_its_parent_is_killed(tmp_path) -> None:
    """Parent starts the child, writes its pid, then waits; SIGKILL to the parent ends the child."""
    pid_file = tmp_path / "child.pid"
    parent_code = textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", {CHILD!r}])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(60)
        """
    )
    assert_killing_ends_the_child(subprocess.Popen([sys.executable, "-c", parent_code]), pid_file)


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


POOL_PARENT = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from mksgn.lifetime import exit_when_orphaned

def work(owner, pid_file):
    exit_when_orphaned(owner)
    open(pid_file, "w").write(str(os.getpid()))
    time.sleep(60)

if __name__ == "__main__":
    with ProcessPoolExecutor(1, mp_context=get_context("forkserver")) as pool:
        pool.submit(work, os.getpid(), sys.argv[1]).result()
"""


def test_forkserver_pool_worker_exits_when_the_owner_is_killed(tmp_path) -> None:
    """A pool worker's parent is the forkserver, which outlives a SIGKILLed main process; the
    worker watches the owner's pid instead, so it ends too (the distillation benchmark's case)."""
    pid_file, script = tmp_path / "worker.pid", tmp_path / "owner.py"
    script.write_text(POOL_PARENT)
    assert_killing_ends_the_child(
        subprocess.Popen([sys.executable, str(script), str(pid_file)]), pid_file
    )
