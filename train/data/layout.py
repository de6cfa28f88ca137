"""Skeleton layouts as data: joint names, edges and the centre joint, and what follows from them.

A layout's edges are undirected 0-based joint pairs. Everything a model needs is derived:
- the inward direction of each edge (toward the centre, by breadth-first distance from it);
- CTR-GCN's 3-partition adjacency stack(I, norm(inward), norm(outward)), where norm divides each
  column by its sum; an edge between two joints equally far from the centre (only possible in a
  graph with cycles, such as COCO's) joins the first partition in both directions, as ST-GCN's
  spatial-configuration partition puts same-distance neighbours with the root;
- the bone parent of every joint (its first neighbour one step closer to the centre; the
  centre's bone is zero).
Orientation follows CTR-GCN's `graph/tools.py`: an edge (i, j) sets A[j, i] = 1.

A user's own layout is a JSON file {"name", "joints", "edges", "center", "channels"}; `channels`
is 3 (x, y, z, or PYSKL's x, y and score stacked as the third channel).
"""

from __future__ import annotations

import functools
import json
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mksgn.errors import MksgnError

LAYOUT_KEYS = ("name", "joints", "edges", "center", "channels")
# mksgn's models read three coordinate channels (encode_input, the NIR export's input layer).
SUPPORTED_CHANNELS = 3
MAX_LAYOUT_BYTES = 1 << 20  # a layout is a few hundred bytes; refuse to read a huge file


def edges_to_matrix(edges: Iterable[tuple[int, int]], num_nodes: int) -> np.ndarray:
    """Adjacency (num_nodes, num_nodes) float64 with A[j, i] = 1 for every edge (i, j)."""
    matrix = np.zeros((num_nodes, num_nodes))
    for i, j in edges:
        matrix[j, i] = 1.0
    return matrix


def normalize_digraph(matrix: np.ndarray) -> np.ndarray:
    """A · diag(1 / column sums): every non-empty column sums to 1, empty columns stay 0."""
    column_sums = matrix.sum(axis=0)
    scale = np.zeros_like(column_sums, dtype=np.float64)
    nonzero = column_sums > 0
    scale[nonzero] = 1.0 / column_sums[nonzero]
    return matrix * scale[None, :]


@dataclass(frozen=True)
class SkeletonLayout:
    """A skeleton's joints, its undirected 0-based edges and the centre joint, validated."""

    name: str
    joints: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    center: int
    channels: int = 3

    def __post_init__(self) -> None:
        where = f"layout {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise MksgnError(f"layout name must be a non-empty string, got {self.name!r}")
        if len(self.joints) < 2:
            raise MksgnError(f"{where}: needs at least 2 joints, got {len(self.joints)}")
        for index, joint in enumerate(self.joints):
            if not isinstance(joint, str) or not joint:
                raise MksgnError(f"{where}: joint {index} has no name ({joint!r})")
        if len(set(self.joints)) != len(self.joints):
            twice = next(j for j in self.joints if self.joints.count(j) > 1)
            raise MksgnError(f"{where}: joint name {twice!r} appears twice")
        count = len(self.joints)
        if not _is_index(self.center) or not 0 <= self.center < count:
            raise MksgnError(
                f"{where}: center {self.center!r} is not a joint index in 0..{count - 1}"
            )
        if self.channels != SUPPORTED_CHANNELS:
            raise MksgnError(
                f"{where}: channels is {self.channels!r}; mksgn reads 3 channels per joint "
                "(x, y, z, or x, y and a confidence score)"
            )
        seen: set[frozenset[int]] = set()
        for number, edge in enumerate(self.edges):
            if len(edge) != 2 or not all(_is_index(i) and 0 <= i < count for i in edge):
                raise MksgnError(
                    f"{where}: edge {number} {list(edge)} must be two joint indices in "
                    f"0..{count - 1}"
                )
            if edge[0] == edge[1]:
                raise MksgnError(f"{where}: edge {number} {list(edge)} joins a joint to itself")
            pair = frozenset(edge)
            if pair in seen:
                raise MksgnError(f"{where}: edge {number} {list(edge)} is listed twice")
            seen.add(pair)
        unreached = [j for j, d in enumerate(self.distances) if d < 0]
        if unreached:
            raise MksgnError(
                f"{where}: joint {unreached[0]} ({self.joints[unreached[0]]!r}) is not connected "
                f"to the center {self.center} ({self.joints[self.center]!r}); the edges must "
                "connect every joint"
            )

    @property
    def num_joints(self) -> int:
        """Joints per body."""
        return len(self.joints)

    @functools.cached_property
    def distances(self) -> tuple[int, ...]:
        """Edges from the centre to each joint (breadth first); -1 for an unreachable joint."""
        neighbours: list[list[int]] = [[] for _ in self.joints]
        for a, b in self.edges:
            neighbours[a].append(b)
            neighbours[b].append(a)
        distance = [-1] * len(self.joints)
        distance[self.center] = 0
        queue = deque([self.center])
        while queue:
            joint = queue.popleft()
            for other in neighbours[joint]:
                if distance[other] < 0:
                    distance[other] = distance[joint] + 1
                    queue.append(other)
        return tuple(distance)

    @functools.cached_property
    def inward_edges(self) -> tuple[tuple[int, int], ...]:
        """(child, parent) pairs pointing toward the centre, in the layout's edge order."""
        d = self.distances
        return tuple((a, b) if d[a] > d[b] else (b, a) for a, b in self.edges if d[a] != d[b])

    @functools.cached_property
    def level_edges(self) -> tuple[tuple[int, int], ...]:
        """Edges between joints equally far from the centre, in both directions."""
        d = self.distances
        pairs = [(a, b) for a, b in self.edges if d[a] == d[b]]
        return tuple(pairs + [(b, a) for a, b in pairs])

    @functools.cached_property
    def parents(self) -> tuple[int, ...]:
        """Bone parent of every joint: its first inward neighbour; the centre is its own."""
        parents = [-1] * self.num_joints
        parents[self.center] = self.center  # its bone x - x = 0
        for child, parent in self.inward_edges:
            if parents[child] < 0:
                parents[child] = parent
        return tuple(parents)

    def spatial_partition(self) -> np.ndarray:
        """(3, V, V) float32 = stack(I (+ same-distance links), norm(inward), norm(outward))."""
        count = self.num_joints
        own = [(j, j) for j in range(count)] + list(self.level_edges)
        outward = [(parent, child) for child, parent in self.inward_edges]
        return np.stack(
            (
                normalize_digraph(edges_to_matrix(own, count)),
                normalize_digraph(edges_to_matrix(self.inward_edges, count)),
                normalize_digraph(edges_to_matrix(outward, count)),
            )
        ).astype(np.float32)

    def bone_matrix(self) -> np.ndarray:
        """(V, V) B with bone[w] = Σ_v B[w, v] x[v] = x[w] - x[parent(w)] (float32)."""
        matrix = np.eye(self.num_joints, dtype=np.float32)
        matrix[np.arange(self.num_joints), list(self.parents)] -= 1.0  # the centre: 1 - 1 = 0
        return matrix

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, exactly the keys of a layout file."""
        return {
            "name": self.name,
            "joints": list(self.joints),
            "edges": [list(edge) for edge in self.edges],
            "center": self.center,
            "channels": self.channels,
        }

    def to_json(self) -> str:
        """The layout as one JSON line (what datasets and NIR metadata store)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def describe(self) -> str:
        """'name' (V joints, E edges, centre 'joint') for messages."""
        return (
            f"'{self.name}' ({self.num_joints} joints, {len(self.edges)} edges, centre "
            f"{self.joints[self.center]})"
        )

    @classmethod
    def from_dict(cls, data: object, source: str = "layout") -> SkeletonLayout:
        """Validate plain data (a parsed layout file) into a layout; `source` names it in errors."""
        if not isinstance(data, dict):
            raise MksgnError(f"{source}: a layout is a JSON object with keys {list(LAYOUT_KEYS)}")
        unknown = sorted(set(map(str, data)) - set(LAYOUT_KEYS))
        if unknown:
            raise MksgnError(
                f"{source}: unknown layout keys {unknown}; a layout has exactly {list(LAYOUT_KEYS)}"
            )
        missing = [key for key in LAYOUT_KEYS if key not in data]
        if missing:
            raise MksgnError(f"{source}: layout lacks the keys {missing}")
        joints, edges = data["joints"], data["edges"]
        if not isinstance(joints, list):
            raise MksgnError(f"{source}: 'joints' must be a list of joint names")
        if not isinstance(edges, list) or not all(
            isinstance(edge, (list, tuple)) for edge in edges
        ):
            raise MksgnError(f"{source}: 'edges' must be a list of [joint, joint] pairs")
        try:
            return cls(
                name=data["name"],
                joints=tuple(joints),
                edges=tuple(tuple(edge) for edge in edges),
                center=data["center"],
                channels=data["channels"],
            )
        except MksgnError as error:
            raise MksgnError(f"{source}: {error}") from None

    @classmethod
    def from_json(cls, text: str, source: str = "layout") -> SkeletonLayout:
        """Parse a layout from JSON text."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as error:
            raise MksgnError(f"{source}: not valid JSON ({error})") from None
        return cls.from_dict(data, source)


def _is_index(value: object) -> bool:
    """An int that is not a bool (JSON true would otherwise pass as joint 1)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _from_1based(
    name: str, joints: str, edges: tuple[tuple[int, int], ...], center: int
) -> SkeletonLayout:
    """A built-in layout written in its dataset's 1-based joint numbering."""
    return SkeletonLayout(
        name=name,
        joints=tuple(joints.split()),
        edges=tuple((a - 1, b - 1) for a, b in edges),
        center=center - 1,
    )


# NTU RGB+D (Kinect v2): CTR-GCN's inward pairs (child, parent), 1-based; centre 21 = spine
# shoulder.
NTU_EDGES_1BASED = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7),
    (9, 21), (10, 9), (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15),
    (17, 1), (18, 17), (19, 18), (20, 19), (22, 23), (23, 8), (24, 25), (25, 12),
)  # fmt: skip
NTU_25 = _from_1based(
    "ntu-25",
    "spine_base spine_mid neck head shoulder_left elbow_left wrist_left hand_left "
    "shoulder_right elbow_right wrist_right hand_right hip_left knee_left ankle_left foot_left "
    "hip_right knee_right ankle_right foot_right spine_shoulder hand_tip_left thumb_left "
    "hand_tip_right thumb_right",
    NTU_EDGES_1BASED,
    21,
)
# NW-UCLA (Kinect v1, 20 joints in its own order): the bone pairs of CTR-GCN's NW-UCLA feeder,
# whose root is joint 3, the shoulder centre.
KINECT_V1_EDGES_1BASED = (
    (1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9), (11, 10),
    (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
)  # fmt: skip
KINECT_V1_20 = _from_1based(
    "kinect-v1-20",
    "hip_center spine shoulder_center head shoulder_left elbow_left wrist_left hand_left "
    "shoulder_right elbow_right wrist_right hand_right hip_left knee_left ankle_left foot_left "
    "hip_right knee_right ankle_right foot_right",
    KINECT_V1_EDGES_1BASED,
    3,
)
# COCO keypoints (2-D + score in PYSKL): the 19 limbs of the COCO skeleton, 1-based. COCO has no
# neck or spine joint; the shoulders and hips are the joints with the fewest edges to the
# farthest joint (4), and the centre is the first of them, the left shoulder.
COCO_EDGES_1BASED = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
    (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip
COCO_17 = _from_1based(
    "coco-17",
    "nose left_eye right_eye left_ear right_ear left_shoulder right_shoulder left_elbow "
    "right_elbow left_wrist right_wrist left_hip right_hip left_knee right_knee left_ankle "
    "right_ankle",
    COCO_EDGES_1BASED,
    6,
)
BUILTIN_LAYOUTS: dict[str, SkeletonLayout] = {
    layout.name: layout for layout in (NTU_25, KINECT_V1_20, COCO_17)
}


def load_layout(name_or_path: str | os.PathLike[str]) -> SkeletonLayout:
    """A built-in layout by name, or a layout JSON file {"name", "joints", "edges", "center",
    "channels"}."""
    text = os.fspath(name_or_path)
    if text in BUILTIN_LAYOUTS:
        return BUILTIN_LAYOUTS[text]
    path = Path(text)
    if not path.is_file():
        raise MksgnError(
            f"layout {text!r} is neither a built-in layout ({', '.join(BUILTIN_LAYOUTS)}) nor a "
            'JSON file; a layout file holds {"name", "joints", "edges", "center", '
            '"channels"}'
        )
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_LAYOUT_BYTES + 1)
    except OSError as error:
        raise MksgnError(f"{path}: cannot read the layout file: {error.strerror}") from None
    if len(raw) > MAX_LAYOUT_BYTES:
        raise MksgnError(f"{path}: larger than {MAX_LAYOUT_BYTES} bytes; not a layout file")
    try:
        decoded = raw.decode("utf8")
    except UnicodeDecodeError:
        raise MksgnError(f"{path}: not UTF-8 text; a layout file is JSON") from None
    return SkeletonLayout.from_json(decoded, str(path))


def layout_from_dict(data: dict[str, Any] | None) -> SkeletonLayout:
    """The layout a model config stores (None, from checkpoints before layouts: ntu-25)."""
    if data is None:
        return NTU_25
    builtin = BUILTIN_LAYOUTS.get(data.get("name")) if isinstance(data, dict) else None
    if builtin is not None and builtin.to_dict() == data:
        return builtin  # shares its derived graph instead of recomputing it
    return SkeletonLayout.from_dict(data, "model config")
