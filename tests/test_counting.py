"""Operation counting on hand-made NIR graphs (dense, conv with padding/stride/groups, a recurrent
edge) against hand-computed counts, NeuroBench's rule on a snnTorch model, and the teacher's MACs
from torch and from ONNX."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from model_fixtures import tiny_config
from snntorch import utils as snn_utils
from snntorch.export_nir import export_to_nir
from torch.nn import functional as F

from mksgn.benchmarks.counting import (
    count_operations,
    required_records,
    run_and_count,
    synapse_fanout,
)
from mksgn.benchmarks.teacher_macs import onnx_macs_per_sample, teacher_macs
from mksgn.errors import MksgnError
from mksgn.train.checkpoint import save_checkpoint
from mksgn.train.models import build_model
from mksgn.train.models.cost import dense_macs_per_sample


def graph(nodes: dict, edges: list) -> nir.NIRGraph:
    """A NIR graph without nir's type check (grouped convolutions fail it)."""
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def if_node(shape: tuple[int, ...], threshold: float = 0.5) -> nir.IF:
    """IF neurons (r = 1, reset to 0)."""
    return nir.IF(r=np.ones(shape), v_threshold=np.full(shape, threshold), v_reset=np.zeros(shape))


def by_name(counts) -> dict:
    """Layer counts keyed by synapse node."""
    return {layer.name: layer for layer in counts.layers}


def test_dense_graph_hand_counts() -> None:
    # input (3) -> fc1 (2×3) -> if1 -> fc2 (2×2) -> output; direct coding over T = 3 steps.
    fc1 = nir.Linear(weight=np.array([[1.0, 0.0, 0.0], [0.0, 2.0, -1.0]]))
    fc2 = nir.Affine(weight=np.array([[1.0, 0.0], [3.0, 1.0]]), bias=np.array([5.0, 5.0]))
    g = graph(
        {
            "input": nir.Input(input_type=np.array([3])),
            "fc1": fc1,
            "if1": if_node((2,)),
            "fc2": fc2,
            "output": nir.Output(output_type=np.array([2])),
        },
        [("input", "fc1"), ("fc1", "if1"), ("if1", "fc2"), ("fc2", "output")],
    )
    inputs = np.tile(np.array([0.7, 0.0, 2.0]), (2, 3, 1))  # 2 samples, same input every step
    spikes = np.array([[[1, 0], [0, 1], [1, 1]], [[0, 0], [0, 0], [0, 1]]], dtype=np.float32)
    counts = count_operations(g, inputs, {"if1": spikes})
    layers = by_name(counts)
    # fc1: non-zero inputs 0 and 2 reach 1 and 1 non-zero weights, once (direct coding).
    assert layers["fc1"].kind == "mac" and layers["fc1"].direct_coded
    assert layers["fc1"].macs == 2.0 and layers["fc1"].acs == 0.0
    assert layers["fc1"].dense_ops == 6.0  # 3 × 2 synapses, once per sample
    # fc2 fan-out: neuron 0 -> 2 weights, neuron 1 -> 1 weight (zero weight excluded, bias too).
    # sample 0: 2 + 1 + 3 = 6, sample 1: 1 -> 3.5 per sample.
    assert layers["fc2"].kind == "ac" and layers["fc2"].acs == 3.5
    assert layers["fc2"].dense_ops == 4 * 3
    assert layers["fc2"].firing_rate == pytest.approx(5 / 12)
    assert layers["fc2"].paper_sop == pytest.approx(5 / 12 * 3 * 4)
    # if1: 2 neurons × 3 steps, reported on the synapse that feeds it.
    assert layers["fc1"].neuron_updates == 6.0 and layers["fc1"].neuron_node == "if1"
    assert layers["fc1"].neuron_firing_rate == pytest.approx(5 / 12)
    assert (counts.acs, counts.macs, counts.neuron_updates) == (3.5, 2.0, 6.0)
    assert counts.spikes == {"if1": 2.5}


def test_graded_input_that_changes_counts_every_step() -> None:
    fc = nir.Linear(weight=np.array([[1.0, 1.0], [0.0, 1.0]]))
    g = graph(
        {
            "input": nir.Input(input_type=np.array([2])),
            "fc": fc,
            "if1": if_node((2,)),
            "output": nir.Output(output_type=np.array([2])),
        },
        [("input", "fc"), ("fc", "if1"), ("if1", "output")],
    )
    inputs = np.array([[[0.5, 0.0], [0.5, 2.0], [0.0, 0.0]]])
    counts = count_operations(g, inputs, {"if1": np.zeros((1, 3, 2))})
    fc_count = by_name(counts)["fc"]
    # step 0: input 0 reaches 1 weight; step 1: 1 + 2; step 2: nothing.
    assert not fc_count.direct_coded and fc_count.macs == 4.0 and fc_count.dense_ops == 12.0


def test_conv1d_padding_stride_groups_hand_counts() -> None:
    # Two channels, groups = 2, kernel 3, stride 2, padding 1, length 4 -> 2 outputs.
    # Channel 0 kernel [a, 0, b]: output 0 sees positions (-1, 0, 1), output 1 sees (1, 2, 3);
    # non-zero taps reach position 1 twice and position 3 once: fan-out [0, 2, 0, 1].
    # Channel 1 kernel [c, d, e]: fan-out [1, 2, 1, 1].
    weight = np.array([[[0.5, 0.0, -1.0]], [[1.0, 2.0, 3.0]]])
    conv = nir.Conv1d(
        input_shape=4, weight=weight, stride=2, padding=1, dilation=1, groups=2, bias=np.ones(2)
    )
    np.testing.assert_array_equal(synapse_fanout(conv, (2, 4)), [[0, 2, 0, 1], [1, 2, 1, 1]])
    g = graph(
        {
            "input": nir.Input(input_type=np.array([2, 4])),
            "if0": if_node((2, 4)),
            "conv": conv,
            "if1": if_node((2, 2)),
            "output": nir.Output(output_type=np.array([2, 2])),
        },
        [("input", "if0"), ("if0", "conv"), ("conv", "if1"), ("if1", "output")],
    )
    spikes = np.zeros((1, 2, 2, 4))
    spikes[0, 0, 0, 1] = spikes[0, 1, 0, 3] = 1  # channel 0: 2 + 1
    spikes[0, 0, 1, 0] = spikes[0, 0, 1, 2] = spikes[0, 1, 1, 2] = 1  # channel 1: 1 + 1 + 1
    counts = count_operations(
        g, np.zeros((1, 2, 2, 4)), {"if0": spikes, "if1": np.zeros((1, 2, 2, 2))}
    )
    layer = by_name(counts)["conv"]
    assert layer.acs == 6.0 and layer.macs == 0.0
    assert layer.dense_ops == 2 * (5 + 5)  # all taps: fan-out [1, 2, 1, 1] per channel, 2 steps
    assert layer.neuron_updates == 8.0  # if1: 4 neurons × 2 steps
    assert counts.neuron_updates == 8.0 + 16.0  # if0 has no synapse: a row of its own
    assert by_name(counts)["if0"].kind == "none"


@pytest.mark.parametrize(
    "stride, padding, dilation, groups", [(1, 0, 1, 1), (2, 1, 1, 2), (1, 2, 2, 3), (3, 1, 1, 6)]
)
def test_conv2d_fanout_equals_spikes_through_binary_conv(stride, padding, dilation, groups):
    rng = np.random.default_rng(stride + padding + groups)
    weight = rng.normal(size=(6, 6 // groups, 3, 2)) * (rng.random((6, 6 // groups, 3, 2)) > 0.4)
    conv = nir.Conv2d(
        input_shape=(7, 5),
        weight=weight,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=np.zeros(6),
    )
    spikes = (rng.random((5, 6, 7, 5)) < 0.3).astype(np.float64)
    through = F.conv2d(
        torch.from_numpy(spikes),
        torch.from_numpy((weight != 0).astype(np.float64)),
        None,
        stride,
        padding,
        dilation,
        groups,
    )
    fanout = synapse_fanout(conv, (6, 7, 5))
    assert float((spikes * fanout).sum()) == float(through.sum())


def test_recurrent_edge_delivers_the_previous_step() -> None:
    # mix gets if1 (this step) and, through the cycle mix -> if2 -> mix, if2 (previous step).
    mix = nir.Linear(weight=np.array([[1.0, 0.0], [2.0, 3.0]]))  # fan-out: 2, 1
    g = graph(
        {
            "input": nir.Input(input_type=np.array([2])),
            "fc": nir.Linear(weight=np.eye(2)),
            "if1": if_node((2,)),
            "mix": mix,
            "if2": if_node((2,)),
            "output": nir.Output(output_type=np.array([2])),
        },
        [
            ("input", "fc"),
            ("fc", "if1"),
            ("if1", "mix"),
            ("mix", "if2"),
            ("if2", "mix"),
            ("if2", "output"),
        ],
    )
    if1 = np.array([[[1, 0], [0, 1], [1, 1]]], dtype=np.float32)
    if2 = np.array([[[0, 1], [1, 0], [1, 1]]], dtype=np.float32)
    counts = count_operations(g, np.ones((1, 3, 2)), {"if1": if1, "if2": if2})
    layer = by_name(counts)["mix"]
    # if1: 2 + 1 + 3 = 6; if2 delivered one step late: step 1 gets [0, 1] -> 1, step 2 gets
    # [1, 0] -> 2, and the last step's spikes are never delivered.
    assert layer.acs == 9.0
    assert layer.sources == ("if1", "if2")
    assert layer.neuron_updates == 6.0


def test_counts_from_a_run_match_brute_force() -> None:
    rng = np.random.default_rng(3)
    w1 = rng.normal(size=(6, 2, 3)) * (rng.random((6, 2, 3)) > 0.3)
    w2 = rng.normal(size=(4, 6, 1)) * (rng.random((4, 6, 1)) > 0.5)
    g = graph(
        {
            "input": nir.Input(input_type=np.array([4, 9])),
            "conv1": nir.Conv1d(9, w1, 2, 1, 1, 2, np.zeros(6)),
            "lif1": nir.LIF(
                tau=np.full((6, 5), 2e-4),
                r=np.full((6, 5), 2.0),
                v_leak=np.zeros((6, 5)),
                v_threshold=np.full((6, 5), 0.3),
                v_reset=np.zeros((6, 5)),
            ),
            "conv2": nir.Conv1d(5, w2, 1, 0, 1, 1, np.zeros(4)),
            "if2": if_node((4, 5), 0.2),
            "output": nir.Output(output_type=np.array([4, 5])),
        },
        [
            ("input", "conv1"),
            ("conv1", "lif1"),
            ("lif1", "conv2"),
            ("conv2", "if2"),
            ("if2", "output"),
        ],
    )
    inputs = rng.normal(size=(3, 4, 4, 9)).astype(np.float32)
    assert set(required_records(g)) == {"lif1", "if2"}
    counts, result = run_and_count(g, inputs, "snntorch")
    spikes = torch.from_numpy(result.recorded["lif1"]).double().flatten(0, 1)
    assert 0 < float(spikes.mean()) < 1
    acs = F.conv1d(spikes, torch.from_numpy((w2 != 0) * 1.0)).sum() / 3
    graded = torch.from_numpy(inputs != 0).double().flatten(0, 1)
    macs = F.conv1d(graded, torch.from_numpy((w1 != 0) * 1.0), None, 2, 1, 1, 2).sum() / 3
    layers = by_name(counts)
    assert layers["conv2"].acs == float(acs)
    assert layers["conv1"].macs == float(macs) and not layers["conv1"].direct_coded


def neurobench_rule(net: torch.nn.Module, inputs: torch.Tensor) -> tuple[float, float]:
    """NeuroBench 2.x SynapticOperations (Effective_ACs, Effective_MACs) per sample, re-implemented
    from its rule because neurobench is not installed: each Linear call, inputs binarised to
    (x != 0) go through weights binarised to (w != 0) without bias; the sum is ACs when the input
    is all 0/1 (spikes), else MACs. The network runs step by step over (batch, T, features)."""
    totals = {"acs": 0.0, "macs": 0.0}

    def hook(module: torch.nn.Linear, args: tuple[torch.Tensor, ...], _out) -> None:
        x = args[0]
        ops = float(((x != 0).double() @ (module.weight != 0).double().T).sum())
        spiking = bool(torch.all((x == 0) | (x == 1)))
        totals["acs" if spiking else "macs"] += ops

    hooks = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Linear)]
    snn_utils.reset(net)
    with torch.no_grad():
        for step in range(inputs.shape[1]):
            net(inputs[:, step])
    for handle in hooks:
        handle.remove()
    return totals["acs"] / inputs.shape[0], totals["macs"] / inputs.shape[0]


@pytest.mark.parametrize("constant", [False, True])
def test_counts_equal_neurobench_rule_on_snntorch_model(constant: bool) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(5, 4),
        snn.Leaky(
            beta=torch.tensor([0.5, 0.8, 0.9, 0.7]),
            threshold=torch.tensor([0.3, 0.5, 0.2, 0.4]),
            init_hidden=True,
            reset_mechanism="zero",  # what NIR's v_reset expresses
        ),
        torch.nn.Linear(4, 3),
        snn.Leaky(
            beta=torch.full((3,), 0.7),
            threshold=torch.full((3,), 0.1),
            init_hidden=True,
            reset_mechanism="zero",
        ),
    )
    with torch.no_grad():
        net[0].weight[0, :2] = 0
        net[2].weight[1, 3] = 0
    exported = export_to_nir(net, torch.zeros(1, 5), ignore_dims=[0])
    steps = 6
    inputs = torch.randn(4, steps, 5)
    if constant:
        inputs = inputs[:, :1].expand(4, steps, 5).contiguous()
    inputs[:, :, 4] = 0  # a silent input feature: zero inputs do no MACs
    counts, _ = run_and_count(exported, inputs.numpy(), "snntorch")
    acs, macs = neurobench_rule(net, inputs)
    assert acs > 0 and macs > 0
    assert counts.acs == pytest.approx(acs, abs=1e-9)
    # NeuroBench computes the directly coded first layer every step; mksgn counts it once.
    assert counts.macs == pytest.approx(macs / steps if constant else macs, abs=1e-9)


def test_unrecorded_source_is_an_error() -> None:
    g = graph(
        {
            "input": nir.Input(input_type=np.array([2])),
            "if1": if_node((2,)),
            "fc": nir.Linear(weight=np.eye(2)),
            "output": nir.Output(output_type=np.array([2])),
        },
        [("input", "if1"), ("if1", "fc"), ("fc", "output")],
    )
    with pytest.raises(MksgnError, match="if1"):
        count_operations(g, np.ones((1, 2, 2)), {})


def test_teacher_macs_equal_from_torch_and_onnx(tmp_path) -> None:
    from mksgn.convert.onnx_export import teacher_to_onnx

    config = tiny_config("gcn", 3, frames=8)
    torch.manual_seed(0)
    teacher = build_model(config).eval()
    save_checkpoint(
        tmp_path / "gcn.pt",
        config=config,
        model_state=teacher.state_dict(),
        optimizer_state=None,
        scheduler_state=None,
        epoch=1,
        metrics={},
        rng_state={},
    )
    teacher_to_onnx(teacher, tmp_path / "gcn.onnx", frames=8)
    expected = dense_macs_per_sample(teacher, config)
    # By hand: 12 -> 4 -> 8 channels, 50 nodes, 3 partitions, kernel 3, 8 then 4 frames.
    graph_conv = 3 * 4 * 12 * 8 * 50 + 3 * 4 * 8 * 50 * 50
    graph_conv += 3 * 8 * 4 * 8 * 50 + 3 * 8 * 8 * 50 * 50
    temporal = 8 * 50 * 4 * 4 * 3 + 4 * 50 * 8 * 8 * 3
    residual = 8 * 50 * 4 * 12 + 4 * 50 * 8 * 4
    assert expected == graph_conv + temporal + residual + 8 * 3
    assert onnx_macs_per_sample(tmp_path / "gcn.onnx") == expected
    assert teacher_macs(tmp_path / "gcn.pt") == expected
    assert teacher_macs(tmp_path / "gcn.onnx") == expected
