"""Lava's flat layout, and convolutions lowered to Lava Sparse: the matrix equals the composed
convolution, and a student-like graph spikes alike as Sparse, as Conv and in the NIR reference."""

from __future__ import annotations

import itertools

import nir
import numpy as np
import pytest
from test_lava_graph import DT, assert_same, no_children_left, reference

from mksgn.benchmarks.support.graphs import lif
from mksgn.convert.lava_graph import Path as LinearPath
from mksgn.convert.lava_graph import build_plan, path_matrix
from mksgn.convert.lava_plan import conv_sparse_matrix, from_lava, lava_order, lava_shape, to_lava
from mksgn.convert.nir_validation import conv_output_shape
from mksgn.targets.lava import LavaTarget

RNG = np.random.default_rng(17)


def test_lava_layout_round_trip() -> None:
    """(C, L) -> (L, 1, C) and (C, H, W) -> (W, H, C), and back."""
    x = np.arange(2 * 3 * 5).reshape(2, 3, 5)
    assert lava_shape((3, 5)) == (5, 1, 3) and lava_shape((2, 3, 5)) == (5, 3, 2)
    assert to_lava(x, (2, 3, 5))[4, 1, 0] == x[0, 1, 4]
    assert np.array_equal(from_lava(to_lava(x, (2, 3, 5)), (2, 3, 5)), x)
    y = x.reshape(2, 15)
    assert to_lava(y, (2, 15))[7, 0, 1] == y[1, 7]
    assert np.array_equal(from_lava(to_lava(y[None], (2, 15)), (2, 15))[0], y)


def student_like_graph(nodes: int = 4, frames: int = 10) -> nir.NIRGraph:
    """The lowering of a spiking GCN in miniature: a pointwise Conv1d on the graded input (a
    spatial graph conv), a grouped temporal Conv1d (groups = nodes, k = 5, stride 2, padding 2)
    and a pointwise Conv1d on spikes, then Flatten -> Affine readout."""
    c_in, c1, c2 = 3, 4, 5
    pointwise_in = RNG.normal(0.15, 0.5, (nodes * c1, nodes * c_in, 1))
    pointwise_in[:, ::3] = 0.0  # zero columns, as a coding branch has for other modalities
    temporal = np.tile(RNG.normal(0.25, 0.6, (c1, c1, 5)), (nodes, 1, 1))
    out_frames = (frames + 2 * 2 - 5) // 2 + 1
    graph_nodes = {
        "input": nir.Input(input_type=np.array([nodes * c_in, frames])),
        "spatial": nir.Conv1d(
            input_shape=frames,
            weight=pointwise_in,
            stride=1,
            padding=0,
            dilation=1,
            groups=1,
            bias=RNG.normal(0, 0.1, nodes * c1),
        ),
        "lif1": lif((nodes * c1, frames), tau=3e-4, vth=0.8),
        "temporal": nir.Conv1d(
            input_shape=frames,
            weight=temporal,
            stride=2,
            padding=2,
            dilation=1,
            groups=nodes,
            bias=np.zeros(nodes * c1),
        ),
        "lif2": lif((nodes * c1, out_frames), tau=3e-4, vth=1.0),
        "spatial2": nir.Conv1d(
            input_shape=out_frames,
            weight=RNG.normal(0.1, 0.4, (nodes * c2, nodes * c1, 1)),
            stride=1,
            padding=0,
            dilation=1,
            groups=1,
            bias=np.full(nodes * c2, 0.05),
        ),
        "lif3": lif((nodes * c2, out_frames), tau=2e-4, vth=0.7),
        "flat": nir.Flatten(input_type={"input": np.array([nodes * c2, out_frames])}, start_dim=0),
        "fc": nir.Affine(
            weight=RNG.normal(0, 0.3, (3, nodes * c2 * out_frames)), bias=np.array([0.1, 0, 0])
        ),
        "output": nir.Output(output_type=np.array([3])),
    }
    chain = ["input", "spatial", "lif1", "temporal", "lif2", "spatial2", "lif3", "flat", "fc"]
    edges = [*itertools.pairwise(chain), ("fc", "output")]
    return nir.NIRGraph(nodes=graph_nodes, edges=edges, type_check=False)


def test_sparse_matrix_equals_the_composed_convolution() -> None:
    """conv_sparse_matrix is the convolution's matrix in Lava flat order (2-D, stride, padding,
    dilation, groups), stores no zeros and keeps each row's columns sorted."""
    cases = [
        (nir.Conv1d, (4, 9), dict(stride=2, padding=2, dilation=1, groups=2), (6, 2, 5)),
        (nir.Conv1d, (4, 7), dict(stride=1, padding=0, dilation=1, groups=1), (3, 4, 1)),
        (nir.Conv1d, (2, 8), dict(stride=1, padding=3, dilation=2, groups=1), (2, 2, 3)),
        (
            nir.Conv2d,
            (4, 5, 6),
            dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
            (4, 2, 3, 2),
        ),
    ]
    for index, (kind, in_shape, geometry, weight_shape) in enumerate(cases):
        weight = RNG.normal(0, 1, weight_shape)
        weight[RNG.random(weight_shape) < 0.3] = 0.0
        spatial = in_shape[1] if kind is nir.Conv1d else in_shape[1:]
        node = kind(input_shape=spatial, weight=weight, bias=np.zeros(weight_shape[0]), **geometry)
        out_shape = conv_output_shape("conv", node, in_shape)
        graph = nir.NIRGraph(
            nodes={
                "input": nir.Input(input_type=np.array(in_shape)),
                "conv": node,
                "lif": lif(out_shape, tau=DT, r=1.0),  # gain r·dt/tau = 1
                "output": nir.Output(output_type=np.array(out_shape)),
            },
            edges=[("input", "conv"), ("conv", "lif"), ("lif", "output")],
            type_check=False,
        )
        syn = build_plan(graph, DT, conv_lowering="sparse").synapses[0]
        matrix = conv_sparse_matrix(syn.weight, syn.conv, lava_shape(out_shape))
        shapes = {"input": in_shape, "conv": out_shape}
        expected = path_matrix(
            LinearPath("input", ["conv"], 0, False), graph.nodes, shapes, in_shape
        )
        expected = expected[lava_order(out_shape)][:, lava_order(in_shape)]
        assert np.array_equal(matrix.toarray(), expected), index
        assert matrix.nnz == np.count_nonzero(expected) == syn.nonzeros > 0, index
        assert matrix.has_sorted_indices and syn.lava_process == "Sparse"
        assert build_plan(graph, DT, conv_lowering="conv").synapses[0].lava_process == "Conv"


@pytest.mark.timeout(120)
def test_pointwise_and_grouped_temporal_convs_as_sparse_match_conv_and_reference() -> None:
    """Pointwise (graded and spike input) and grouped strided padded temporal convolutions run as
    Lava Sparse give the same spikes as the NIR reference and as the Lava Conv lowering."""
    graph = student_like_graph()
    sparse_plan = build_plan(graph, DT)  # auto: Sparse is far cheaper than Lava's Conv model
    conv_plan = build_plan(graph, DT, conv_lowering="conv")
    assert [s.lava_process for s in sparse_plan.synapses] == ["Sparse"] * 3 + ["Dense"]
    assert [s.lava_process for s in conv_plan.synapses] == ["Conv"] * 3 + ["Dense"]
    # 16 outputs x 8 of 12 graded inputs x 10 frames; the temporal conv loses its padded taps.
    assert sparse_plan.synapses[0].nonzeros == 16 * 8 * 10
    assert sparse_plan.synapses[1].nonzeros == 4 * 4 * 4 * (5 + 5 + 5 + 4 + 3)
    inputs = RNG.uniform(-0.5, 1.5, (2, 4, 12, 10))
    record = ("lif1", "lif2", "lif3")
    target = LavaTarget(fixed_point=False, timeout_s=120)
    sparse = target.run_plan(sparse_plan, inputs, record).recorded
    conv = target.run_plan(conv_plan, inputs, record).recorded
    refs = [reference(graph, sample) for sample in inputs]
    expected = {node: np.stack([r[node] for r in refs]) for node in sparse}
    for node in record:
        assert_same(sparse, expected, node)
        assert np.array_equal(sparse[node], conv[node]), node
    assert_same(sparse, expected, "output", values=True)
    no_children_left()
