"""Skeleton layouts as data: validation, JSON files, built-ins and what is derived from them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from mksgn.errors import MksgnError
from mksgn.train.data import graph
from mksgn.train.data.layout import (
    BUILTIN_LAYOUTS,
    COCO_17,
    KINECT_V1_20,
    NTU_25,
    SkeletonLayout,
    load_layout,
)

TRIANGLE = {"name": "tri", "joints": ["a", "b", "c"], "edges": [[0, 1], [1, 2]], "center": 1}


def layout_of(**changes: object) -> SkeletonLayout:
    """The three-joint chain a-b-c with some fields changed."""
    data = {**TRIANGLE, "channels": 3, **changes}
    return SkeletonLayout.from_dict(data, "test")


def test_ntu_layout_reproduces_the_reference_graph_exactly() -> None:
    assert NTU_25.inward_edges == graph.INWARD_EDGES
    assert NTU_25.parents == graph.PARENTS
    assert NTU_25.center == graph.CENTER_JOINT == 20
    expected = np.stack(
        (
            np.eye(25),
            graph.normalize_digraph(graph.edges_to_matrix(graph.INWARD_EDGES, 25)),
            graph.normalize_digraph(graph.edges_to_matrix(graph.OUTWARD_EDGES, 25)),
        )
    ).astype(np.float32)
    np.testing.assert_array_equal(NTU_25.spatial_partition(), expected)


def test_kinect_v1_layout_is_ctrgcn_nw_ucla_bones_rooted_at_the_shoulder_centre() -> None:
    assert KINECT_V1_20.num_joints == 20 and KINECT_V1_20.joints[2] == "shoulder_center"
    assert KINECT_V1_20.center == 2 and KINECT_V1_20.parents[2] == 2
    # 1-based bone pairs (v, parent) of the feeder: (1,2) (4,3) (13,1) (20,19)
    for child, parent in ((0, 1), (3, 2), (12, 0), (19, 18)):
        assert KINECT_V1_20.parents[child] == parent
    # NTU's first 20 joints follow the Kinect v1 order, and so do their parents (but for 21).
    for joint in range(20):
        ntu_parent = NTU_25.parents[joint]
        assert KINECT_V1_20.parents[joint] == (2 if ntu_parent == 20 else ntu_parent)


def test_coco_layout_cycles_go_to_the_first_partition() -> None:
    partition = COCO_17.spatial_partition()
    assert partition.shape == (3, 17, 17)
    # nose (0) and right eye (2) are both 3 edges from the left shoulder: a level edge, in the
    # first partition both ways, beside the identity
    assert COCO_17.distances[0] == COCO_17.distances[2] == 3
    assert set(COCO_17.level_edges) == {(0, 2), (2, 0)}
    assert partition[0][0, 0] == partition[0][2, 0] == 0.5
    for k in range(3):
        sums = partition[k].sum(axis=0)
        assert np.allclose(sums[sums > 0], 1.0)
    assert COCO_17.parents[COCO_17.center] == COCO_17.center
    assert all(
        COCO_17.distances[p] == COCO_17.distances[j] - 1
        for j, p in enumerate(COCO_17.parents)
        if j != COCO_17.center
    )


def test_bone_matrix_matches_the_parents() -> None:
    for layout in BUILTIN_LAYOUTS.values():
        x = np.random.default_rng(0).normal(size=(layout.num_joints, 3))
        bones = layout.bone_matrix() @ x
        np.testing.assert_allclose(bones, x - x[list(layout.parents)], atol=1e-6)
        assert not bones[layout.center].any()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"edges": [[0, 1], [1, 3]]}, r"edge 1 \[1, 3\] must be two joint indices in 0\.\.2"),
        ({"edges": [[0, 1], [2, 2]]}, r"edge 1 \[2, 2\] joins a joint to itself"),
        ({"edges": [[0, 1], [1, 0]]}, r"edge 1 \[1, 0\] is listed twice"),
        ({"edges": [[0, 1]]}, r"joint 2 \('c'\) is not connected to the center 1"),
        ({"center": 3}, r"center 3 is not a joint index in 0\.\.2"),
        ({"center": True}, r"center True is not a joint index"),
        ({"joints": ["a", "b", "a"]}, r"joint name 'a' appears twice"),
        ({"channels": 2}, r"channels is 2; mksgn reads 3 channels"),
        ({"colour": "red"}, r"unknown layout keys \['colour'\]"),
        ({"edges": [[0, 1.0], [1, 2]]}, r"edge 0 \[0, 1\.0\] must be two joint indices"),
    ],
)
def test_bad_layouts_name_the_bad_entry(changes: dict, message: str) -> None:
    with pytest.raises(MksgnError, match=message):
        layout_of(**changes)


def test_layout_files_round_trip_and_unknown_names_fail(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({**TRIANGLE, "channels": 3}))
    layout = load_layout(path)
    assert layout == layout_of() and layout.parents == (1, 1, 1)
    assert SkeletonLayout.from_json(layout.to_json()) == layout
    assert load_layout("kinect-v1-20") is KINECT_V1_20
    with pytest.raises(MksgnError, match="neither a built-in layout"):
        load_layout(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(MksgnError, match=r"bad\.json: not valid JSON"):
        load_layout(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(MksgnError, match="a layout is a JSON object"):
        load_layout(tmp_path / "list.json")


def test_layouts_compare_by_value() -> None:
    assert dataclasses.replace(NTU_25) == NTU_25
    assert dataclasses.replace(NTU_25, name="mine") != NTU_25


def test_model_configs_carry_their_layout_and_old_ones_are_ntu() -> None:
    from mksgn.train.models.config import ModelConfig

    old = {"model": "gcn", "num_classes": 3, "joints": 25, "bodies": 2}  # before layouts
    config = ModelConfig.from_dict(old)
    assert config.skeleton_layout == NTU_25 and config.layout == NTU_25.to_dict()
    ucla = ModelConfig.from_dict({**old, "layout": KINECT_V1_20.to_dict()})
    assert ucla.joints == 20 and ucla.nodes == 40
    assert ModelConfig.from_dict(ucla.to_dict()) == ucla
    broken = {**KINECT_V1_20.to_dict(), "center": 20}
    with pytest.raises(MksgnError, match="model config: layout 'kinect-v1-20': center 20"):
        ModelConfig.from_dict({**old, "layout": broken})
