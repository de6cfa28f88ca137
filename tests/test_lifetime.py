"""A process that called exit_when_orphaned or die_with_parent ends soon after its parent is
SIGKILLed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from process_helpers import assert_killing_ends_the_child

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


# A native sleep that keeps the GIL (PyDLL does not release it), as gloo's teardown once did: no
# watching thread can run, only the kernel's parent-death signal ends it.
STUCK_CHILD = (
    "import ctypes, os; from mksgn.lifetime import die_with_parent; "
    "die_with_parent(os.getppid()); ctypes.PyDLL(None).sleep(60)"
)


def test_child_stuck_holding_the_gil_dies_with_its_parent(tmp_path) -> None:
    pid_file = tmp_path / "child.pid"
    parent_code = textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", {STUCK_CHILD!r}])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(60)
        """
    )
    assert_killing_ends_the_child(subprocess.Popen([sys.executable, "-c", parent_code]), pid_file)


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


END_CODE = """
import atexit, sys
from mksgn.lifetime import end_process, skip_finalization_on_error
atexit.register(lambda: open(sys.argv[1], "w").write("finalized"))
if sys.argv[2] == "skip":
    skip_finalization_on_error()
print("reported", file=sys.stderr, end="")
end_process(int(sys.argv[3]))
"""


@pytest.mark.parametrize(
    ("mode", "code", "finalized"), [("skip", 1, False), ("skip", 0, True), ("keep", 1, True)]
)
def test_an_error_exit_skips_finalization_only_when_asked(tmp_path, mode, code, finalized) -> None:
    """A torchrun worker whose peer died hung in finalization after reporting its error: once it
    has asked, its error exit skips finalization (atexit here), keeping what it printed."""
    marker = tmp_path / "finalized"
    ended = subprocess.run(
        [sys.executable, "-c", END_CODE, str(marker), mode, str(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ended.returncode == code
    assert ended.stderr == "reported"
    assert marker.exists() == finalized
