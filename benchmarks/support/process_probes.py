"""Probes of processes and memory for the fault-injection tests and the reliability benchmark:
Lava sessions and their process models as they start, descendants, /proc memory figures."""

from __future__ import annotations

import time
from pathlib import Path

from mksgn.processes import alive, processes_where


def command_line(pid: int) -> bytes:
    """The raw /proc command line of `pid` (NUL-separated); empty once it has ended."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def lava_process_models(session: int) -> list[int]:
    """The Lava worker's children that run process models: forked from the worker, so they
    share its command line (not multiprocessing's tracker, nor a helper a library runs)."""
    return [
        pid
        for pid in processes_where("ppid", session)
        if b"mksgn.targets.lava import worker_main" in command_line(pid)
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


def started_lava_session(pid: int, members: int = 3, timeout_s: float = 90) -> int | None:
    """The session id of the Lava worker that process `pid` started, once it runs at least
    `members` processes and their count has stopped changing for a second; None if that does
    not happen within `timeout_s` or `pid` ends first."""
    deadline = time.monotonic() + timeout_s
    counts: list[int] = []
    while time.monotonic() < deadline and pid in alive({pid}):
        sessions = processes_where("ppid", pid)
        if sessions:
            counts.append(len(processes_where("session", sessions[0])))
            if counts[-1] >= members and len(counts) > 10 and len(set(counts[-10:])) == 1:
                return sessions[0]
        time.sleep(0.1)
    return None


def first_lava_process_model(pid: int, timeout_s: float = 90) -> tuple[int, int] | None:
    """(session, pid) of the first process model that the Lava worker started by process `pid`
    forks, polled every millisecond so that it is caught during Lava's start-up; None if none
    appears within `timeout_s` or `pid` ends first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and pid in alive({pid}):
        sessions = processes_where("ppid", pid)
        children = processes_where("ppid", sessions[0]) if sessions else []
        # Lava's start-up begins with multiprocessing's resource tracker. Before it, a library
        # runs `uname -p` at import, whose child has the worker's command line until its exec.
        if any(b"resource_tracker" in command_line(child) for child in children):
            models = lava_process_models(sessions[0])
            if models:
                return sessions[0], models[0]
        time.sleep(0.001)
    return None


def memory_status(field: str, pid: int | str = "self") -> int:
    """A figure of /proc/PID/status in bytes: "VmRSS" (resident now), "VmHWM" (resident peak)."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise KeyError(f"/proc/{pid}/status has no {field}")


def reset_resident_peak() -> bool:
    """Set this process's resident peak (VmHWM) back to what it holds now; False if the kernel
    does not allow it (clear_refs needs Linux 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True
