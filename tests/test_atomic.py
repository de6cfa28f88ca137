"""Outputs are written atomically: a failure leaves neither a partial file nor a temporary."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mksgn.atomic import atomic_directory, atomic_open, atomic_savez


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_savez_writes_exactly_the_target_name(tmp_path: Path) -> None:
    target = tmp_path / "out" / "data.npz"
    atomic_savez(target, compressed=False, x=np.arange(3))
    assert sorted(p.name for p in target.parent.iterdir()) == ["data.npz"]
    np.testing.assert_array_equal(np.load(target)["x"], np.arange(3))


def test_interrupted_savez_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np.lib.format, "write_array", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_savez(tmp_path / "data.npz", x=np.arange(3))
    assert list(tmp_path.iterdir()) == []


def test_directory_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "run"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (target / "a.txt").read_text() == "1"
    with pytest.raises(ValueError), atomic_directory(target) as tmp:
        (tmp / "b.txt").write_text("2")
        raise ValueError("conversion failed")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_outputs_get_ordinary_permissions(tmp_path: Path) -> None:
    target = tmp_path / "data.npz"
    atomic_savez(target, x=np.arange(3))
    reference = tmp_path / "plain.txt"
    reference.write_text("x")
    assert target.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777


def test_temporaries_of_ended_owners_are_removed_by_the_next_write(tmp_path: Path) -> None:
    """Only the target's own temporaries, only from this host, only when their owner has ended."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # reaped: the pid is free (the test assumes it is not reused within the test)
    host = socket.gethostname()
    stale_file = tmp_path / f".data.npz.{host}-{ended.pid}.x1.npz"
    stale_spool = tmp_path / f".data.npz.{host}-{ended.pid}.x2"
    kept = [
        tmp_path / f".data.npz.{host}-{os.getpid()}.x3.npz",  # its owner runs
        tmp_path / f".data.npz.otherhost-{ended.pid}.x4.npz",  # cannot be checked from here
        tmp_path / f".other.npz.{host}-{ended.pid}.x5.npz",  # another target's
    ]
    for path in [stale_file, *kept]:
        path.write_bytes(b"partial")
    stale_spool.mkdir()
    (stale_spool / "x_train.raw").write_bytes(b"partial")

    atomic_savez(tmp_path / "data.npz", x=np.arange(3))

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["data.npz", *(p.name for p in kept)]
    )


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_an_interrupt_right_after_the_temporary_is_made_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """SIGTERM becomes KeyboardInterrupt at any statement: one landing as mkstemp/mkdtemp returns
    (the temporary exists, its name not yet known to the writer) leaves no temporary behind (a
    training run's metrics.jsonl temporary was left once this way)."""
    import tempfile

    name = "mkstemp" if kind == "file" else "mkdtemp"
    make = getattr(tempfile, name)

    def made_then_interrupted(*args: object, **kwargs: object) -> object:
        make(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(tempfile, name, made_then_interrupted)
    target = tmp_path / ("metrics.jsonl" if kind == "file" else "folder")
    with pytest.raises(KeyboardInterrupt):
        if kind == "file":
            with atomic_open(target) as handle:
                handle.write("never")
        else:
            with atomic_directory(target):
                pass
    assert list(tmp_path.iterdir()) == []
