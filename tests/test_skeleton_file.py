"""Reading and writing raw NTU RGB+D .skeleton files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mksgn.errors import MksgnError
from mksgn.train.data.skeleton_file import (
    FIRST_GENERATED_BODY_ID,
    MalformedSkeletonFile,
    read_skeleton_file,
    write_skeleton_file,
)

BODY_LINES = 27  # info line + joint count + 25 joints


def two_body_joints(seed: int = 0) -> np.ndarray:
    """(6, 2, 25, 3): body 2 appears in frames 2-4 only, frame 1 (0-based) has no body."""
    rng = np.random.default_rng(seed)
    joints = rng.normal(0.0, 1.0, (6, 2, 25, 3)).astype(np.float32)
    joints[1] = 0
    joints[[0, 5], 1] = 0
    return joints


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, np.ndarray]:
    path = tmp_path / "S001C001P001R001A050.skeleton"
    joints = two_body_joints()
    write_skeleton_file(path, joints)
    return path, joints


def test_write_then_read_round_trip(written: tuple[Path, np.ndarray]) -> None:
    path, joints = written
    frames = read_skeleton_file(path)
    assert frames.num_frames == 6
    assert frames.num_empty_frames == 1
    assert list(frames.bodies) == [FIRST_GENERATED_BODY_ID, FIRST_GENERATED_BODY_ID + 1]
    first, second = frames.bodies.values()
    np.testing.assert_array_equal(first.frames, [0, 2, 3, 4, 5])
    np.testing.assert_array_equal(second.frames, [2, 3, 4])
    assert first.joints.dtype == np.float32 and first.joints.shape == (5, 25, 3)
    np.testing.assert_array_equal(first.joints, joints[[0, 2, 3, 4, 5], 0])  # exact in float32
    np.testing.assert_array_equal(second.joints, joints[2:5, 1])


def test_written_layout_matches_the_format(written: tuple[Path, np.ndarray]) -> None:
    path, _ = written
    lines = path.read_text().splitlines()
    assert lines[0] == "6"
    assert lines[1] == "1"  # frame 1: one body
    info = lines[2].split()
    assert len(info) == 10 and int(info[0]) == FIRST_GENERATED_BODY_ID
    assert lines[3] == "25"
    assert all(len(line.split()) == 12 for line in lines[4:29])
    assert lines[29] == "0"  # frame 2: no body
    assert lines[30] == "2"  # frame 3: two bodies
    assert len(lines) == 1 + 6 + (1 + 2 + 2 + 2 + 1) * BODY_LINES


def test_reads_a_hand_written_file(tmp_path: Path) -> None:
    joint_lines = [
        f"{0.1 * j} {0.2 * j} {3 + j / 100} 250.1 200.2 900.3 500.4 0.1 0.2 0.3 0.4 2"
        for j in range(25)
    ]
    text = "\n".join(
        ["2", "1", "72057594037927937 0 1 1 1 1 0 -0.1 0.2 2", "25", *joint_lines, "0", ""]
    )
    path = tmp_path / "hand.skeleton"
    path.write_text(text.replace("\n", "\r\n"))  # Windows line ends are fine
    frames = read_skeleton_file(path)
    assert (frames.num_frames, frames.num_empty_frames) == (2, 1)
    body = frames.bodies[72057594037927937]
    np.testing.assert_array_equal(body.frames, [0])
    np.testing.assert_allclose(body.joints[0, 24], [2.4, 4.8, 3.24], rtol=1e-6)


def test_custom_body_ids_and_all_zero_frames(tmp_path: Path) -> None:
    path = tmp_path / "zero.skeleton"
    joints = np.zeros((3, 2, 25, 3), dtype=np.float32)
    joints[2, 1] = 1.5
    write_skeleton_file(path, joints, body_ids=[7, 9])
    frames = read_skeleton_file(path)
    assert frames.num_empty_frames == 2
    assert list(frames.bodies) == [9]
    np.testing.assert_array_equal(frames.bodies[9].frames, [2])


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="frames, bodies, 25, 3"):
        write_skeleton_file(tmp_path / "a.skeleton", np.zeros((3, 25, 3)))
    with pytest.raises(ValueError, match="distinct body ids"):
        write_skeleton_file(tmp_path / "a.skeleton", np.ones((3, 2, 25, 3)), body_ids=[1, 1])
    with pytest.raises(ValueError, match="finite"):
        write_skeleton_file(tmp_path / "a.skeleton", np.full((3, 1, 25, 3), np.nan))
    assert list(tmp_path.iterdir()) == []


def rewrite(path: Path, edit) -> Path:
    """Apply `edit` to the file's list of lines and write it back."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")
    return path


def expect_error(path: Path, line: int, words: str) -> MalformedSkeletonFile:
    with pytest.raises(MalformedSkeletonFile) as caught:
        read_skeleton_file(path)
    error = caught.value
    assert isinstance(error, MksgnError)
    assert error.line == line, str(error)
    assert str(path) in str(error) and f"line {line}:" in str(error)
    assert words in str(error)
    return error


def test_truncated_at_a_line_boundary(written: tuple[Path, np.ndarray]) -> None:
    path, _ = written
    rewrite(path, lambda lines: lines[:100])
    expect_error(path, 101, "unexpected end of file")


def test_truncated_inside_a_joint_line(written: tuple[Path, np.ndarray]) -> None:
    path, _ = written
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:19], lines[19][:8]]))  # line 20 is cut after 8 characters
    line = 20
    expect_error(path, line, "12 values")


def test_truncated_before_a_frame(written: tuple[Path, np.ndarray]) -> None:
    path, _ = written
    rewrite(path, lambda lines: lines[: 1 + 1 + BODY_LINES])  # only frame 1 is left
    expect_error(path, 3 + BODY_LINES, "body count of frame 2")


@pytest.mark.parametrize(
    ("line", "replacement", "words"),
    [
        (1, "six", "frame count"),
        (1, "-3", "non-negative"),
        (2, "1 2", "body count of frame 1"),
        (3, "72057594037931101 0 1 1 1 1 0 0.1 2", "body info line"),
        (3, "body 0 1 1 1 1 0 0.1 0.2 2", "integer bodyID"),
        (4, "24", "joint count 25"),
        (10, "0.1 0.2 0.3 1 2 3 4 5 6 7 8", "12 values, got 11"),
        (17, "0.1 0.2 abc 1 2 3 4 5 6 7 8 2", "'0.1 0.2 abc"),
        (29, "0.1 nan 0.3 1 2 3 4 5 6 7 8 2", "finite x y z"),
    ],
)
def test_garbage_is_reported_with_its_line(
    written: tuple[Path, np.ndarray], line: int, replacement: str, words: str
) -> None:
    path, _ = written

    def edit(lines: list[str]) -> list[str]:
        lines[line - 1] = replacement
        return lines

    expect_error(rewrite(path, edit), line, words)


def test_garbage_in_a_later_body_names_the_right_line(written: tuple[Path, np.ndarray]) -> None:
    path, _ = written
    bad_line = 1 + 1 + BODY_LINES + 1 + 1 + BODY_LINES + 2 + 20  # frame 3, body 2, joint 19

    def edit(lines: list[str]) -> list[str]:
        lines[bad_line - 1] = lines[bad_line - 1].replace(" ", " x", 1)
        return lines

    expect_error(rewrite(path, edit), bad_line, "12 numbers")


def test_trailing_content_and_empty_file(written: tuple[Path, np.ndarray]) -> None:
    path, _ = written
    total = len(path.read_text().splitlines())
    rewrite(path, lambda lines: [*lines, "", "1"])
    expect_error(path, total + 2, "end of file after the 6 frames")
    path.write_text("")
    expect_error(path, 1, "frame count")


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MksgnError, match="cannot read"):
        read_skeleton_file(tmp_path / "absent.skeleton")
