"""The process table and /dev/shm as Linux shows them in /proc: what the Lava watchdog and the
atomic writers clean up (the probes tests and benchmarks use are in
benchmarks/support/process_probes.py)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

SHM = "/dev/shm"


def processes_where(field: str, value: int) -> list[int]:
    """Process ids whose /proc stat `field` ("ppid", "pgrp" or "session") equals `value`."""
    index = {"ppid": 1, "pgrp": 2, "session": 3}[field]  # after the name: state ppid pgrp session
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[index]) == value:
            found.append(int(entry))
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


def mapped_shm(pids: list[int]) -> set[str]:
    """/dev/shm files mapped by the given processes."""
    paths: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/maps") as handle:
            for line in handle:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and parts[5].startswith(f"{SHM}/"):
                    paths.add(parts[5].strip().removesuffix(" (deleted)"))
    return paths


def shm_segments() -> set[str]:
    """Paths of the current /dev/shm segments."""
    return {f"{SHM}/{name}" for name in os.listdir(SHM)}
