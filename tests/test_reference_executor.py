"""The snnTorch reference executor on hand-built NIR graphs: synapses against torch functional,
pooling/flatten, neuron traces computed by hand, a recurrent CubaLIF cycle, nested graphs,
delays, and a graph from snnTorch's own NIR export."""

from __future__ import annotations

import itertools

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from snntorch import utils as snn_utils
from snntorch.export_nir import export_to_nir
from torch.nn import functional as F

from mksgn.convert.nir_graph import flatten_graph
from mksgn.errors import MksgnError
from mksgn.targets.reference import ReferenceTarget, schedule

DT = 1e-4


def chain(*named: tuple[str, nir.NIRNode], shape: tuple[int, ...], out: tuple[int, ...]):
    """Input -> named nodes in sequence -> Output."""
    nodes = {
        "input": nir.Input(np.array(shape)),
        **dict(named),
        "output": nir.Output(np.array(out)),
    }
    names = list(nodes)
    edges = list(itertools.pairwise(names))
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def run(graph: nir.NIRGraph, inputs: np.ndarray, record: tuple[str, ...] = ()) -> dict:
    """Recorded arrays of a float64 reference run."""
    return ReferenceTarget(dt=DT, dtype=torch.float64).run(graph, inputs, record).recorded


def test_conv1d_with_stride_padding_dilation_groups_matches_torch() -> None:
    rng = np.random.default_rng(0)
    weight, bias = rng.normal(size=(6, 2, 3)), rng.normal(size=6)
    conv = nir.Conv1d(
        input_shape=11, weight=weight, stride=2, padding=2, dilation=2, groups=2, bias=bias
    )
    x = rng.normal(size=(2, 3, 4, 11))
    got = run(chain(("conv", conv), shape=(4, 11), out=(6, 6)), x)["output"]
    expected = F.conv1d(
        torch.from_numpy(x).flatten(0, 1),
        torch.from_numpy(weight),
        torch.from_numpy(bias),
        2,
        2,
        2,
        2,
    )
    np.testing.assert_allclose(got, expected.unflatten(0, (2, 3)).numpy(), rtol=0, atol=1e-12)


def test_conv2d_with_stride_padding_groups_matches_torch() -> None:
    rng = np.random.default_rng(1)
    weight, bias = rng.normal(size=(4, 3, 3, 2)), rng.normal(size=4)
    conv = nir.Conv2d(
        input_shape=(7, 5),
        weight=weight,
        stride=(2, 1),
        padding=(1, 0),
        dilation=1,
        groups=2,
        bias=bias,
    )
    x = rng.normal(size=(3, 2, 6, 7, 5))
    got = run(chain(("conv", conv), shape=(6, 7, 5), out=(4, 4, 4)), x)["output"]
    expected = F.conv2d(
        torch.from_numpy(x).flatten(0, 1),
        torch.from_numpy(weight),
        torch.from_numpy(bias),
        (2, 1),
        (1, 0),
        1,
        2,
    )
    np.testing.assert_allclose(got, expected.unflatten(0, (3, 2)).numpy(), rtol=0, atol=1e-12)


def test_pooling_and_flatten() -> None:
    x = np.arange(2 * 4 * 6, dtype=np.float64).reshape(1, 1, 2, 4, 6)
    pools = {
        "sum": nir.SumPool2d(
            kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])
        ),
        "avg": nir.AvgPool2d(
            kernel_size=np.array([2, 3]), stride=np.array([2, 3]), padding=np.array([0, 0])
        ),
    }
    flat_sum = chain(
        ("pool", pools["sum"]),
        ("flatten", nir.Flatten(np.array([2, 2, 3]), 0, -1)),
        shape=(2, 4, 6),
        out=(12,),
    )
    got = run(flat_sum, x)["output"][0, 0]
    block = x[0, 0].reshape(2, 2, 2, 3, 2).sum(axis=(2, 4))  # (C, H/2, W/2) window sums
    np.testing.assert_array_equal(got, block.ravel())
    assert got[0] == 0 + 1 + 6 + 7
    average = chain(("pool", pools["avg"]), shape=(2, 4, 6), out=(2, 2, 2))
    got = run(average, x)["output"][0, 0]
    assert got[0, 0, 0] == np.mean([0, 1, 2, 6, 7, 8])
    partial = chain(
        ("flatten", nir.Flatten(np.array([2, 4, 6]), 1, 2)), shape=(2, 4, 6), out=(2, 24)
    )
    np.testing.assert_array_equal(run(partial, x)["output"][0, 0], x[0, 0].reshape(2, 24))


def one_neuron(node: nir.NIRNode, inputs: list[float]) -> np.ndarray:
    """The output trace of a single neuron driven by `inputs`."""
    graph = chain(("neuron", node), shape=(1,), out=(1,))
    return run(graph, np.array(inputs, dtype=np.float64).reshape(1, -1, 1))["output"][0, :, 0]


def vec(value: float) -> np.ndarray:
    """A one-neuron parameter array."""
    return np.array([value])


def test_lif_li_if_i_hand_computed_traces() -> None:
    # tau = 2·dt: decay 1/2; r = 1: gain dt·r/tau = 1/2; leak dt/tau·v_leak = 0.1.
    lif = nir.LIF(
        tau=vec(2e-4), r=vec(1.0), v_leak=vec(0.2), v_threshold=vec(1.0), v_reset=vec(-0.5)
    )
    # v: 0.6, 0.9, 1.05 (spike, v ← −0.5), −0.25 + 0.6 = 0.35
    np.testing.assert_array_equal(one_neuron(lif, [1, 1, 1, 1]), [0, 0, 1, 0])
    li = nir.LI(tau=vec(2e-4), r=vec(1.0), v_leak=vec(0.2))
    np.testing.assert_allclose(one_neuron(li, [1, 1, 1, 1]), [0.6, 0.9, 1.05, 1.125], atol=1e-12)
    # snnTorch's convention (r = tau/dt, no leak): v = β·v + I with reset to zero.
    snn_lif = nir.LIF(
        tau=vec(2e-4), r=vec(2.0), v_leak=vec(0.0), v_threshold=vec(1.0), v_reset=vec(0.0)
    )
    # v: 0.6, 0.9, 1.05 (spike, v ← 0), 0.6, 0.9
    np.testing.assert_array_equal(one_neuron(snn_lif, [0.6] * 5), [0, 0, 1, 0, 0])
    integrate_fire = nir.IF(r=vec(0.5), v_threshold=vec(1.0), v_reset=vec(0.0))
    # v: 0.4, 0.8, 1.2 (spike, v ← 0), 0.4
    np.testing.assert_array_equal(one_neuron(integrate_fire, [0.8] * 4), [0, 0, 1, 0])
    np.testing.assert_allclose(one_neuron(nir.I(r=vec(0.5)), [0.8] * 4), [0.4, 0.8, 1.2, 1.6])


def test_cuba_neurons_use_the_current_updated_in_the_same_step() -> None:
    # α = 1 − dt/tau_syn = 0.5, a = dt·w_in/tau_syn = 1; β = 0.75, b = dt·r/tau_mem = 1.
    params = dict(tau_syn=vec(2e-4), tau_mem=vec(4e-4), r=vec(4.0), v_leak=vec(0.0), w_in=vec(2.0))
    # I: 1, .5, .25, .125, .0625; v: 1, 1.25 (spike, v ← 0), .25, .3125, .296875
    cuba_lif = nir.CubaLIF(**params, v_threshold=vec(1.0), v_reset=vec(0.0))
    np.testing.assert_array_equal(one_neuron(cuba_lif, [1, 0, 0, 0, 0]), [0, 1, 0, 0, 0])
    cuba_li = nir.CubaLI(**params)
    np.testing.assert_allclose(
        one_neuron(cuba_li, [1, 0, 0, 0, 0]), [1, 1.25, 1.1875, 1.015625, 0.82421875]
    )


def recurrent_cuba_graph(bias: float = 0.0) -> nir.NIRGraph:
    """Two CubaLIF neurons (α = β = 1/2, unit gains, θ = 1); neuron 1's spikes excite neuron 0."""
    two = np.ones(2)
    lif = nir.CubaLIF(
        tau_syn=2e-4 * two,
        tau_mem=2e-4 * two,
        r=2 * two,
        v_leak=0 * two,
        v_threshold=two,
        v_reset=0 * two,
        w_in=2 * two,
    )
    recurrent = nir.Affine(weight=np.array([[0.0, 1.5], [0.0, 0.0]]), bias=np.array([bias, 0.0]))
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(np.array([2])),
            "lif": lif,
            "rec": recurrent,
            "output": nir.Output(np.array([2])),
        },
        edges=[("input", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")],
        type_check=False,
    )


def test_recurrent_cuba_lif_cycle_carries_the_previous_step() -> None:
    x = np.zeros((1, 4, 2))
    x[0, 0, 1] = 2.0
    # t0: I = [0, 2], v = [0, 2] → neuron 1 spikes. t1: the cycle brings W·s(t0) = [1.5, 0]:
    # I = [1.5, 1], v = [1.5, 1] → neuron 0 spikes (1 is not above 1). t2: I = [.75, .5],
    # v = [.75, 1] → none. t3: I = [.375, .25], v = [.75, .75] → none.
    spikes = run(recurrent_cuba_graph(), x)["output"][0]
    np.testing.assert_array_equal(spikes, [[0, 1], [1, 0], [0, 0], [0, 0]])
    flat = flatten_graph(recurrent_cuba_graph())
    assert schedule(flat).previous["lif"] == ["rec"]


def test_a_bias_on_a_cycle_arrives_from_the_first_step() -> None:
    # With bias 0.6 on the recurrent path neuron 0 gets 0.6 every step, from t0 on:
    # I0: .6, .9 + 1.5 (neuron 1 spiked at t0) = 2.4 → v0: .6, 2.7 → spikes at t1.
    x = np.zeros((1, 2, 2))
    x[0, 0, 1] = 2.0
    spikes = run(recurrent_cuba_graph(bias=0.6), x)["output"][0]
    np.testing.assert_array_equal(spikes, [[0, 1], [1, 0]])
    v0 = run(recurrent_cuba_graph(bias=0.95), np.zeros((1, 1, 2)))["output"][0]
    np.testing.assert_array_equal(v0, [[0, 0]])  # 0.95 at t0 is below threshold


def test_nested_graph_and_delay() -> None:
    inner = nir.NIRGraph(
        nodes={
            "in": nir.Input(np.array([2])),
            "delay": nir.Delay(np.array([0.0, 2e-4])),
            "out": nir.Output(np.array([2])),
        },
        edges=[("in", "delay"), ("delay", "out")],
        type_check=False,
    )
    graph = chain(
        ("scale", nir.Scale(np.array([2.0, 3.0]))), ("block", inner), shape=(2,), out=(2,)
    )
    x = np.array([[1, 1], [2, 2], [3, 3], [4, 4]], dtype=np.float64)[None]
    recorded = run(graph, x, ("block.delay",))
    expected = [[2, 0], [4, 0], [6, 3], [8, 6]]  # element 1 arrives two steps late
    np.testing.assert_array_equal(recorded["output"][0], expected)
    np.testing.assert_array_equal(recorded["block.delay"][0], expected)
    with pytest.raises(MksgnError, match=r"'delay'.*whole multiples"):
        bad = chain(("delay", nir.Delay(np.array([1.5e-4, 0.0]))), shape=(2,), out=(2,))
        run(bad, x)


def test_shape_mismatch_is_refused_naming_the_node() -> None:
    conv = nir.Conv1d(
        input_shape=5,
        weight=np.ones((2, 2, 1)),
        stride=1,
        padding=0,
        dilation=1,
        groups=2,
        bias=np.zeros(2),
    )
    graph = chain(("conv", conv), shape=(3, 5), out=(2, 5))
    with pytest.raises(MksgnError, match=r"'conv' \(Conv1d\).*4 input channels.*receives 3"):
        run(graph, np.zeros((1, 1, 3, 5)))


def test_threshold_and_input_shape_errors() -> None:
    graph = chain(("spike", nir.Threshold(np.array([0.5, 1.5]))), shape=(2,), out=(2,))
    np.testing.assert_array_equal(run(graph, np.ones((1, 1, 2)))["output"][0, 0], [1, 0])
    with pytest.raises(MksgnError, match=r"expected \(samples, time steps, 2\)"):
        run(graph, np.ones((1, 1, 3)))
    with pytest.raises(MksgnError, match="no such nodes"):
        run(graph, np.ones((1, 1, 2)), ("nowhere",))


def test_graph_exported_by_snntorch_reproduces_its_spikes() -> None:
    torch.manual_seed(0)
    # Per-neuron β and threshold arrays, and ignore_dims=[0] for the batch: with scalar neuron
    # parameters or a batch dimension, nir 1.0.8's type inference rejects snnTorch's export.
    net = torch.nn.Sequential(
        torch.nn.Linear(5, 7),
        snn.Leaky(
            beta=torch.full((7,), 0.8),
            threshold=torch.full((7,), 0.5),
            init_hidden=True,
            reset_mechanism="zero",
        ),
        torch.nn.Linear(7, 3),
        snn.Leaky(
            beta=torch.full((3,), 0.6),
            threshold=torch.full((3,), 0.4),
            init_hidden=True,
            reset_mechanism="zero",
        ),
    )
    x = torch.rand(4, 12, 5, generator=torch.Generator().manual_seed(1)) * 1.5
    expected = []
    with torch.no_grad():
        for sample in x:
            snn_utils.reset(net)
            expected.append(torch.stack([net(step[None])[0] for step in sample]))
    expected = torch.stack(expected).numpy()
    graph = export_to_nir(net, torch.zeros(1, 5), ignore_dims=[0])
    outputs = ReferenceTarget().run(graph, x.numpy()).recorded
    (output,) = [values for name, values in outputs.items()]
    np.testing.assert_array_equal(output, expected)
    assert 0 < expected.mean() < 1
