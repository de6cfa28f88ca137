"""Read and write raw NTU RGB+D `.skeleton` text files (Kinect v2 bodies, 25 joints)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mksgn.atomic import atomic_open
from mksgn.errors import MksgnError

NUM_JOINTS = 25
BODY_INFO_VALUES = 10
JOINT_VALUES = 12
JOINT_FIELDS = (
    "x y z depthX depthY colorX colorY orientationW orientationX orientationY orientationZ "
    "trackingState"
)
# Kinect ids look like 72057594037931101; any distinct integers will do for generated files.
FIRST_GENERATED_BODY_ID = 72057594037931101


class MalformedSkeletonFile(MksgnError):
    """A .skeleton file that does not follow the NTU RGB+D text format (or is truncated)."""

    def __init__(self, path: str | os.PathLike[str], line: int, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        super().__init__(
            f"{self.path}: line {line}: {problem}; the file is not a valid NTU RGB+D .skeleton "
            "file (re-extract it from the dataset archive, or delete it to skip the sample)"
        )


@dataclass(frozen=True)
class BodyTrack:
    """One tracked body: the frames it appears in (0-based file frame indices) and its xyz."""

    body_id: int
    frames: np.ndarray  # (n,) int64, ascending in file order
    joints: np.ndarray  # (n, 25, 3) float32, metres in camera space


@dataclass(frozen=True)
class SkeletonFrames:
    """The content of one .skeleton file that body selection needs."""

    path: str
    num_frames: int
    num_empty_frames: int  # frames whose body count is 0
    bodies: dict[int, BodyTrack] = field(default_factory=dict)  # in order of first appearance


def _line_values(lines: list[bytes], index: int, path: str, what: str, count: int) -> list[bytes]:
    """The `count` whitespace-separated values of line `index` (0-based), which holds `what`."""
    if index >= len(lines):
        raise MalformedSkeletonFile(
            path, index + 1, f"unexpected end of file, expected {what} (the file is truncated)"
        )
    tokens = lines[index].split()
    if len(tokens) != count:
        raise MalformedSkeletonFile(
            path,
            index + 1,
            f"expected {what}: {count} value{'s' * (count > 1)}, got {len(tokens)} in "
            f"{_show(lines[index])}",
        )
    return tokens


def _count(lines: list[bytes], index: int, path: str, what: str) -> int:
    """Parse the non-negative integer alone on line `index` (0-based)."""
    (token,) = _line_values(lines, index, path, what, 1)
    try:
        value = int(token)
    except ValueError:
        value = -1
    if value < 0:
        raise MalformedSkeletonFile(
            path, index + 1, f"expected {what} (a non-negative integer), got {_show(lines[index])}"
        )
    return value


def _show(line: bytes, limit: int = 60) -> str:
    text = line.decode("latin-1").strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _body_id(lines: list[bytes], index: int, path: str, where: str) -> int:
    """Parse the 10-value body info line and return its bodyID."""
    fields = "bodyID clippedEdges ... trackingState"
    tokens = _line_values(
        lines, index, path, f"the body info line of {where} ({fields})", BODY_INFO_VALUES
    )
    try:
        return int(tokens[0])
    except ValueError:
        raise MalformedSkeletonFile(
            path, index + 1, f"expected an integer bodyID for {where}, got {_show(tokens[0])}"
        ) from None


def _find_bad_joint_line(lines: list[bytes], starts: list[int], path: str) -> None:
    """Slow path after the vectorised parse failed: raise for the first bad joint line."""
    for start in starts:
        for index in range(start, start + NUM_JOINTS):
            joint = f"joint {index - start + 1} of {NUM_JOINTS}"
            _line_values(lines, index, path, f"{joint} ({JOINT_FIELDS})", JOINT_VALUES)
            try:
                # The same parser as the fast path, so both agree on what a number is.
                values = np.loadtxt([lines[index]], dtype=np.float64, comments=None, ndmin=2)
            except ValueError:
                raise MalformedSkeletonFile(
                    path,
                    index + 1,
                    f"expected {joint} as {JOINT_VALUES} numbers, got {_show(lines[index])}",
                ) from None
            if not np.isfinite(values[0, :3]).all():
                raise MalformedSkeletonFile(
                    path, index + 1, f"expected finite x y z for {joint}, got NaN or infinity"
                )
    raise MalformedSkeletonFile(path, starts[0] + 1, "joint lines could not be parsed")


def read_skeleton_file(path: str | os.PathLike[str]) -> SkeletonFrames:
    """Parse one NTU RGB+D .skeleton file; raise MalformedSkeletonFile naming the bad line."""
    name = str(path)
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as error:
        raise MksgnError(f"{name}: cannot read the file ({error.strerror or error})") from None

    num_frames = _count(lines, 0, name, "the frame count")
    index = 1
    num_empty = 0
    joint_starts: list[int] = []  # 0-based line index of each body record's first joint line
    record_frames: list[int] = []
    record_ids: list[int] = []
    for frame in range(num_frames):
        num_bodies = _count(lines, index, name, f"the body count of frame {frame + 1}")
        index += 1
        if num_bodies == 0:
            num_empty += 1
            continue
        for body in range(num_bodies):
            where = f"body {body + 1} in frame {frame + 1}"
            record_ids.append(_body_id(lines, index, name, where))
            joint_count = _count(lines, index + 1, name, f"the joint count of {where}")
            if joint_count != NUM_JOINTS:
                raise MalformedSkeletonFile(
                    name,
                    index + 2,
                    f"expected the joint count {NUM_JOINTS} for {where}, got {joint_count}",
                )
            index += 2
            if index + NUM_JOINTS > len(lines):
                _find_bad_joint_line(lines, [index], name)
            joint_starts.append(index)
            record_frames.append(frame)
            index += NUM_JOINTS
    for extra in range(index, len(lines)):
        if lines[extra].strip():
            raise MalformedSkeletonFile(
                name,
                extra + 1,
                f"expected the end of file after the {num_frames} frames the first line "
                f"announces, got {_show(lines[extra])}",
            )

    xyz = _parse_joint_blocks(lines, joint_starts, name)
    return SkeletonFrames(
        path=name,
        num_frames=num_frames,
        num_empty_frames=num_empty,
        bodies=_group_by_body(record_ids, record_frames, xyz),
    )


def _parse_joint_blocks(lines: list[bytes], starts: list[int], path: str) -> np.ndarray:
    """All joint lines in one vectorised parse -> (records, 25, 3) float32 xyz."""
    if not starts:
        return np.zeros((0, NUM_JOINTS, 3), dtype=np.float32)
    joint_lines = [line for start in starts for line in lines[start : start + NUM_JOINTS]]
    try:
        # loadtxt checks that every row has the same number of columns and every token is a float.
        values = np.loadtxt(joint_lines, dtype=np.float64, comments=None, ndmin=2)
    except ValueError:
        values = None
    if (
        values is None
        or values.shape != (len(joint_lines), JOINT_VALUES)
        or not np.isfinite(values[:, :3]).all()
    ):
        _find_bad_joint_line(lines, starts, path)
    return values[:, :3].astype(np.float32).reshape(len(starts), NUM_JOINTS, 3)


def _group_by_body(
    record_ids: list[int], record_frames: list[int], xyz: np.ndarray
) -> dict[int, BodyTrack]:
    rows_by_body: dict[int, list[int]] = {}
    for row, body_id in enumerate(record_ids):
        rows_by_body.setdefault(body_id, []).append(row)
    frames = np.asarray(record_frames, dtype=np.int64)
    return {
        body_id: BodyTrack(body_id=body_id, frames=frames[rows], joints=xyz[rows])
        for body_id, rows in rows_by_body.items()
    }


def write_skeleton_file(
    path: str | os.PathLike[str],
    joints: np.ndarray,
    body_ids: Sequence[int] | None = None,
) -> None:
    """Write joints (T, M, 25, 3) as a .skeleton file, atomically; all-zero bodies are omitted."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 4 or joints.shape[2:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must be (frames, bodies, 25, 3), got {joints.shape}")
    if not np.isfinite(joints).all():
        raise ValueError("joints must be finite")
    num_bodies = joints.shape[1]
    if body_ids is None:
        body_ids = [FIRST_GENERATED_BODY_ID + body for body in range(num_bodies)]
    if len(body_ids) != num_bodies or len(set(body_ids)) != num_bodies:
        raise ValueError(f"need {num_bodies} distinct body ids, got {list(body_ids)}")

    # %.9g round-trips float32 exactly; the other columns only need to look like Kinect output.
    joint_line = "%.9g %.9g %.9g %.7g %.7g %.7g %.7g 0 0 0 0 2\n"
    block_format = joint_line * NUM_JOINTS
    present = np.any(joints != 0, axis=(2, 3))  # (T, M)
    depth = np.clip(joints[..., 2], 0.5, None)
    depth_x = 256 + 365 * joints[..., 0] / depth
    depth_y = 212 - 365 * joints[..., 1] / depth
    color_x = 960 + 1060 * joints[..., 0] / depth
    color_y = 540 - 1060 * joints[..., 1] / depth
    columns = np.stack(
        [joints[..., 0], joints[..., 1], joints[..., 2], depth_x, depth_y, color_x, color_y],
        axis=-1,
    )  # (T, M, 25, 7)
    with atomic_open(path, "w") as handle:
        handle.write(f"{joints.shape[0]}\n")
        for frame in range(joints.shape[0]):
            bodies = np.flatnonzero(present[frame])
            handle.write(f"{len(bodies)}\n")
            for body in bodies:
                handle.write(f"{body_ids[body]} 0 1 1 1 1 0 0.01 0.02 2\n{NUM_JOINTS}\n")
                handle.write(block_format % tuple(columns[frame, body].ravel().tolist()))
