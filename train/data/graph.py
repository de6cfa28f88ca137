"""The NTU RGB+D 25-joint skeleton graph and its CTR-GCN spatial partition.

Everything here is derived from the built-in `ntu-25` layout (mksgn.train.data.layout), which
holds the edge list; other skeletons are layouts too. Joint indices are 0-based (NTU joint n is
index n - 1). Orientation follows CTR-GCN's `graph/tools.py`: an edge (i, j) sets A[j, i] = 1, so
for an inward edge (child, parent) the entry sits at A[parent, child]; normalisation divides each
column by its sum. Models aggregate as y[w] = sum_v x[v] A[v, w] (x @ A), exactly as CTR-GCN does.
"""

from __future__ import annotations

import numpy as np

from mksgn.train.data.layout import NTU_25, SkeletonLayout, edges_to_matrix, normalize_digraph

__all__ = [
    "CENTER_JOINT",
    "INWARD_EDGES",
    "NUM_JOINTS",
    "OUTWARD_EDGES",
    "PARENTS",
    "SELF_LINKS",
    "SPINE_MIDDLE",
    "edges_to_matrix",
    "normalize_digraph",
    "spatial_partition",
]

NUM_JOINTS = NTU_25.num_joints
CENTER_JOINT = NTU_25.center  # joint 21, spine shoulder: the root of the inward edges
SPINE_MIDDLE = 1  # joint 2: the origin NTU sequences are translated to

INWARD_EDGES: tuple[tuple[int, int], ...] = NTU_25.inward_edges  # (child, parent)
OUTWARD_EDGES: tuple[tuple[int, int], ...] = tuple(
    (parent, child) for child, parent in INWARD_EDGES
)
SELF_LINKS: tuple[tuple[int, int], ...] = tuple((joint, joint) for joint in range(NUM_JOINTS))
PARENTS: tuple[int, ...] = NTU_25.parents


def spatial_partition(layout: SkeletonLayout = NTU_25) -> np.ndarray:
    """(3, V, V) float32 = stack(I, norm(inward), norm(outward)), CTR-GCN's spatial graph."""
    return layout.spatial_partition()
