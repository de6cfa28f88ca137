"""call_in_child: a result or the child's error comes back; a call stuck in native code holding the
GIL (as libhdf5 on a damaged NIR file) is stopped at its time limit; a crash is an exit status;
the child never outlives this process."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from process_helpers import assert_killing_ends_the_child, stop, wait_until

from mksgn.isolation import ChildDied, ChildFailed, ChildTimedOut, call_in_child
from mksgn.processes import alive, processes_where


def hold_the_gil(seconds: int) -> None:
    """Sleep in C without releasing the GIL (PyDLL keeps it), as a looping native library does."""
    ctypes.PyDLL(None).sleep(seconds)


def segfault() -> None:
    """End this process as a crash in native code would."""
    os.kill(os.getpid(), signal.SIGSEGV)


def living_children() -> set[int]:
    return alive(set(processes_where("ppid", os.getpid())))


def test_the_result_comes_back() -> None:
    assert call_in_child(divmod, 7, 2, timeout_s=30) == (3, 1)


def test_an_exception_comes_back_by_name_and_text() -> None:
    with pytest.raises(ChildFailed) as failure:
        call_in_child(int, "seven", timeout_s=30)
    assert failure.value.kind == "ValueError"
    assert "seven" in failure.value.message


def test_a_result_pickle_cannot_carry_is_a_failure(capfd) -> None:
    with pytest.raises(ChildFailed, match="result not picklable"):
        call_in_child(threading.Lock, timeout_s=30)
    assert capfd.readouterr().err == ""  # and no traceback from the child


def test_a_call_holding_the_gil_is_stopped_and_its_child_killed() -> None:
    before = living_children()
    started = time.monotonic()
    with pytest.raises(ChildTimedOut, match="after 1 s"):
        call_in_child(hold_the_gil, 60, timeout_s=1)
    assert time.monotonic() - started < 10
    assert living_children() <= before


def test_a_crash_in_the_child_is_an_exit_status() -> None:
    with pytest.raises(ChildDied, match="killed by SIGSEGV"):
        call_in_child(segfault, timeout_s=30)


def test_the_child_dies_with_this_process(tmp_path) -> None:
    """Even inside native code holding the GIL, where no watching thread of its own could run."""
    pid_file = tmp_path / "child.pid"
    owner_code = textwrap.dedent(
        f"""
        import ctypes, os
        from mksgn.isolation import call_in_child

        def write_pid_then_hang():
            open({str(pid_file)!r}, "w").write(str(os.getpid()))
            ctypes.PyDLL(None).sleep(60)

        call_in_child(write_pid_then_hang, timeout_s=120)
        """
    )
    assert_killing_ends_the_child(subprocess.Popen([sys.executable, "-c", owner_code]), pid_file)


def warn_then_return(value: int) -> int:
    import warnings

    warnings.warn("from the child", RuntimeWarning, stacklevel=1)
    return value


def test_warnings_in_the_child_are_issued_here(recwarn) -> None:
    """Where the call ran must not change what the user sees (or what the fuzz harness counts)."""
    assert call_in_child(warn_then_return, 5, timeout_s=30) == 5
    assert [(w.category, str(w.message)) for w in recwarn] == [(RuntimeWarning, "from the child")]


def test_ctrl_c_to_the_process_group_prints_nothing_from_the_child(tmp_path) -> None:
    """The terminal sends SIGINT to parent and child alike; only the parent may report it."""
    pid_file = tmp_path / "child.pid"
    owner_code = textwrap.dedent(
        f"""
        import os, sys, time
        from mksgn.isolation import call_in_child

        def write_pid_then_wait():
            open({str(pid_file)!r}, "w").write(str(os.getpid()))
            time.sleep(60)

        try:
            call_in_child(write_pid_then_wait, timeout_s=120)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
        """
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", owner_code],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        child = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), 60, "child"))
        os.killpg(owner.pid, signal.SIGINT)
        _, err = owner.communicate(timeout=30)
    finally:
        stop(owner)
    assert err == "interrupted\n"
    wait_until(lambda: not alive({child}), 10, "the child to be gone")


def test_the_child_leaves_signals_to_the_parent() -> None:
    """Deterministic half of the test above (there the parent usually kills the child first)."""
    assert call_in_child(signal.getsignal, signal.SIGINT, timeout_s=30) == signal.SIG_IGN
    assert call_in_child(signal.getsignal, signal.SIGTERM, timeout_s=30) == signal.SIG_DFL
