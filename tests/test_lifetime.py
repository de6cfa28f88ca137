"""A process that called exit_when_orphaned ends soon after its parent is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from process_helpers import alive, wait_until

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
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    try:
        child = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), 30, "the child"))
        time.sleep(1)
        assert alive({child}), "the child exited while its parent lived"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        wait_until(lambda: not alive({child}), 10, "the orphaned child to exit")
    finally:
        parent.kill()
        parent.wait()
