"""The NTU RGB+D 25-joint skeleton graph and its CTR-GCN spatial partition.

Joint indices here are 0-based (NTU joint n is index n - 1). Orientation follows CTR-GCN's
`graph/tools.py`: an edge (i, j) sets A[j, i] = 1, so for an inward edge (child, parent) the
entry sits at A[parent, child]; normalisation divides each column by its sum. Models aggregate
as y[w] = sum_v x[v] A[v, w] (x @ A), exactly as CTR-GCN does.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

NUM_JOINTS = 25
CENTER_JOINT = 20  # joint 21, spine shoulder: the root of the inward edges
SPINE_MIDDLE = 1  # joint 2: the origin NTU sequences are translated to

# (child, parent) in NTU's 1-based numbering, as CTR-GCN lists them.
INWARD_EDGES_1BASED: tuple[tuple[int, int], ...] = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7),
    (9, 21), (10, 9), (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15),
    (17, 1), (18, 17), (19, 18), (20, 19), (22, 23), (23, 8), (24, 25), (25, 12),
)  # fmt: skip
INWARD_EDGES: tuple[tuple[int, int], ...] = tuple(
    (child - 1, parent - 1) for child, parent in INWARD_EDGES_1BASED
)
OUTWARD_EDGES: tuple[tuple[int, int], ...] = tuple(
    (parent, child) for child, parent in INWARD_EDGES
)
SELF_LINKS: tuple[tuple[int, int], ...] = tuple((joint, joint) for joint in range(NUM_JOINTS))


def _parents() -> tuple[int, ...]:
    parents = [CENTER_JOINT] * NUM_JOINTS  # the centre is its own parent: its bone is zero
    for child, parent in INWARD_EDGES:
        parents[child] = parent
    return tuple(parents)


PARENTS: tuple[int, ...] = _parents()


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


def spatial_partition() -> np.ndarray:
    """(3, 25, 25) float32 = stack(I, norm(inward), norm(outward)), CTR-GCN's spatial graph."""
    return np.stack(
        (
            edges_to_matrix(SELF_LINKS, NUM_JOINTS),
            normalize_digraph(edges_to_matrix(INWARD_EDGES, NUM_JOINTS)),
            normalize_digraph(edges_to_matrix(OUTWARD_EDGES, NUM_JOINTS)),
        )
    ).astype(np.float32)
