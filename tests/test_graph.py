"""The NTU skeleton graph: edge list, parents, CTR-GCN adjacency orientation and normalisation."""

from __future__ import annotations

import numpy as np

from mksgn.train.data.graph import (
    CENTER_JOINT,
    INWARD_EDGES,
    NUM_JOINTS,
    OUTWARD_EDGES,
    PARENTS,
    SPINE_MIDDLE,
    edges_to_matrix,
    normalize_digraph,
    spatial_partition,
)


def test_edges_are_the_reference_list_made_0_based() -> None:
    assert NUM_JOINTS == 25 and CENTER_JOINT == 20 and SPINE_MIDDLE == 1
    assert len(INWARD_EDGES) == 24
    # (1,2) (2,21) (22,23) (23,8) (25,12) in 1-based numbering
    for edge in ((0, 1), (1, 20), (21, 22), (22, 7), (24, 11)):
        assert edge in INWARD_EDGES
    assert all(child != CENTER_JOINT for child, _ in INWARD_EDGES)
    assert set(OUTWARD_EDGES) == {(parent, child) for child, parent in INWARD_EDGES}


def test_parents_form_a_tree_rooted_at_spine_shoulder() -> None:
    assert len(PARENTS) == 25
    assert PARENTS[CENTER_JOINT] == CENTER_JOINT
    assert (PARENTS[0], PARENTS[1], PARENTS[21], PARENTS[24]) == (1, 20, 22, 11)
    for joint in range(NUM_JOINTS):
        steps, current = 0, joint
        while current != CENTER_JOINT:
            current, steps = PARENTS[current], steps + 1
            assert steps < NUM_JOINTS, f"joint {joint} never reaches the centre"


def test_edges_to_matrix_uses_ctrgcn_orientation() -> None:
    matrix = edges_to_matrix([(0, 1), (2, 1)], 3)
    expected = np.zeros((3, 3))
    expected[1, 0] = expected[1, 2] = 1.0  # edge (i, j) -> A[j, i]
    np.testing.assert_array_equal(matrix, expected)


def test_normalize_digraph_divides_columns_by_their_sums() -> None:
    matrix = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    expected = np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.0], [0.5, 0.0, 0.0]])
    np.testing.assert_array_equal(normalize_digraph(matrix), expected)


def test_spatial_partition_is_identity_inward_outward() -> None:
    partition = spatial_partition()
    assert partition.shape == (3, 25, 25) and partition.dtype == np.float32
    np.testing.assert_array_equal(partition[0], np.eye(25))
    for part in partition[1:]:
        sums = part.sum(axis=0)
        nonzero = sums != 0
        np.testing.assert_allclose(sums[nonzero], 1.0, rtol=1e-6)
    inward, outward = partition[1], partition[2]
    # every joint but the centre has exactly one parent: the inward part needs no scaling
    assert inward[:, CENTER_JOINT].sum() == 0
    np.testing.assert_array_equal(inward, edges_to_matrix(INWARD_EDGES, 25))
    # spine shoulder (joint 21) has four children: spine middle, neck, both shoulders
    assert sorted(np.flatnonzero(outward[:, CENTER_JOINT])) == [1, 2, 4, 8]
    np.testing.assert_allclose(outward[[1, 2, 4, 8], CENTER_JOINT], 0.25)
    # spine base (joint 1) has the two hips as children
    np.testing.assert_allclose(outward[[12, 16], 0], 0.5)
    # a leaf such as the head has no children
    assert outward[:, 3].sum() == 0
    np.testing.assert_array_equal(outward != 0, (inward != 0).T)
