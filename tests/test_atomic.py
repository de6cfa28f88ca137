"""Outputs are written atomically: a failure leaves neither a partial file nor a temporary."""

from __future__ import annotations

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
