"""NIR -> Lava lowering: lava-float spikes equal a NumPy run of the NIR semantics, step for step."""

from __future__ import annotations

import os
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from mksgn.benchmarks.support.graphs import lif
from mksgn.convert.lava_graph import build_plan
from mksgn.errors import MksgnError
from mksgn.targets.lava import LavaTarget

DT = 1e-4
RNG = np.random.default_rng(7)


# ---------------------------------------------------------------------------- NumPy reference


def conv_nir(node: nir.NIRNode, x: np.ndarray) -> np.ndarray:
    """PyTorch-convention convolution / pooling of one NIR-layout sample."""
    xt = torch.from_numpy(x[None])
    if isinstance(node, nir.Conv1d):
        y = torch.nn.functional.conv1d(
            xt,
            torch.from_numpy(node.weight),
            stride=int(node.stride),
            padding=int(node.padding),
            dilation=int(node.dilation),
            groups=int(node.groups),
        )
    elif isinstance(node, nir.Conv2d):
        y = torch.nn.functional.conv2d(
            xt,
            torch.from_numpy(node.weight),
            stride=tuple(node.stride),
            padding=node.padding if isinstance(node.padding, str) else tuple(node.padding),
            dilation=tuple(node.dilation),
            groups=int(node.groups),
        )
    else:
        y = torch.nn.functional.avg_pool2d(
            xt, tuple(node.kernel_size), tuple(node.stride), tuple(node.padding)
        )
        if isinstance(node, nir.SumPool2d):
            y = y * float(np.prod(node.kernel_size))
    y = y[0].numpy()
    if getattr(node, "bias", None) is not None:
        y = y + np.asarray(node.bias).reshape((-1,) + (1,) * (y.ndim - 1))
    return y


def reference(graph: nir.NIRGraph, inputs: np.ndarray, dt: float = DT) -> dict[str, np.ndarray]:
    """Every node's output at every step for one sample (T, *shape), straight from the NIR rules."""
    nodes, edges = graph.nodes, graph.edges
    preds = {n: [s for s, t in edges if t == n] for n in nodes}
    state: dict[str, dict[str, np.ndarray]] = {}
    previous: dict[str, np.ndarray] = {}
    history: dict[str, list[np.ndarray]] = {n: [] for n in nodes}
    current: dict[str, np.ndarray] = {}

    def value(name: str, stack: tuple[str, ...], x: np.ndarray, t: int) -> np.ndarray:
        if name in current:
            return current[name]
        if name in stack:  # an edge closing a cycle carries the previous step's value
            return previous.get(name, 0.0)
        node = nodes[name]
        if isinstance(node, nir.Input):
            out = x
        else:
            total = sum(value(p, (*stack, name), x, t) for p in preds[name])
            out = step(name, node, total, t)
        current[name] = out
        return out

    def step(name: str, node: nir.NIRNode, total, t: int):
        s = state.setdefault(name, {})
        if isinstance(node, nir.Output):
            return total
        if isinstance(node, (nir.Affine, nir.Linear)):
            flat = np.broadcast_to(total, node.weight.shape[1:]).reshape(-1)
            return node.weight @ flat + getattr(node, "bias", 0.0)
        if isinstance(node, nir.Scale):
            return node.scale * total
        if isinstance(node, nir.Flatten):
            return total.reshape(-1)
        if isinstance(node, (nir.Conv1d, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d)):
            return conv_nir(node, np.asarray(total, dtype=np.float64))
        if isinstance(node, nir.Delay):
            n = round(float(np.ravel(node.delay)[0]) / dt)
            s.setdefault("queue", []).append(total)
            return s["queue"][-1 - n] if len(s["queue"]) > n else np.zeros_like(total)
        v = s.get("v", 0.0)
        if isinstance(node, (nir.IF, nir.I)):
            v = v + node.r * total
        elif isinstance(node, (nir.LIF, nir.LI)):
            v = v + dt / node.tau * (node.v_leak - v + node.r * total)
        else:
            syn = s.get("i", 0.0)
            syn = syn + dt / node.tau_syn * (-syn + node.w_in * total)
            s["i"] = syn
            v = v + dt / node.tau_mem * (node.v_leak - v + node.r * syn)
        if isinstance(node, (nir.LI, nir.I, nir.CubaLI)):
            s["v"] = v
            return v
        spikes = (v > node.v_threshold).astype(np.float64)
        s["v"] = np.where(spikes > 0, node.v_reset, v)
        return spikes

    for t, x in enumerate(inputs):
        current.clear()
        for name in nodes:
            value(name, (), x, t)
        for name in nodes:
            history[name].append(np.asarray(current[name], dtype=np.float64))
        previous = dict(current)
    return {n: np.stack(v) for n, v in history.items()}


def no_children_left() -> None:
    """The watchdog killed every Lava process (no process in our child sessions survives)."""
    mine = os.getpid()
    leftovers = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == mine:
                leftovers.append(entry)
    assert not leftovers


def run_both(graph: nir.NIRGraph, inputs: np.ndarray, record=()) -> tuple[dict, dict]:
    """lava-float recordings and the reference for (samples, T, *shape) inputs."""
    result = LavaTarget(fixed_point=False, timeout_s=120).run(graph, inputs, tuple(record))
    refs = [reference(graph, sample) for sample in inputs]
    expected = {node: np.stack([r[node] for r in refs]) for node in result.recorded}
    no_children_left()
    return result.recorded, expected


def assert_same(recorded: dict, expected: dict, node: str, values: bool = False) -> None:
    """Spikes exactly equal (values: to 1e-9), and not trivially silent or saturated."""
    got, want = recorded[node], expected[node]
    assert got.shape == want.shape, node
    if values:
        np.testing.assert_allclose(got, want, atol=1e-9, rtol=1e-9)
    else:
        assert np.array_equal(got, want), (node, np.argwhere(got != want)[:5])
        assert 0 < want.mean() < 1, f"{node}: test is trivial (rate {want.mean()})"


# ---------------------------------------------------------------------------- parity


@pytest.mark.timeout(120)
def test_affine_lif_two_samples_streamed_with_reset() -> None:
    """Affine + LIF (r != tau/dt) + Affine readout: spikes and logits per sample, state reset."""
    w1 = RNG.normal(0, 0.6, (6, 4))
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([4])),
            "fc": nir.Affine(weight=w1, bias=RNG.normal(0, 0.1, 6)),
            "lif": lif((6,), tau=5e-4, r=3.0, vth=0.5, leak=0.1),
            "readout": nir.Affine(weight=RNG.normal(0, 1, (3, 6)), bias=np.array([0.1, 0, -0.2])),
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "readout"), ("readout", "output")],
    )
    inputs = RNG.uniform(-1, 2, (2, 6, 4))
    recorded, expected = run_both(graph, inputs, record=("lif",))
    assert_same(recorded, expected, "lif")
    assert_same(recorded, expected, "output", values=True)


def cuba(shape, tau_syn=4e-4, tau_mem=5e-4, vth=1.0, w_in=1.5) -> nir.CubaLIF:
    """A CubaLIF population with array parameters."""
    return nir.CubaLIF(
        tau_syn=np.full(shape, tau_syn),
        tau_mem=np.full(shape, tau_mem),
        r=np.full(shape, 2.0),
        v_leak=np.zeros(shape),
        v_threshold=np.full(shape, vth),
        v_reset=np.zeros(shape),
        w_in=np.full(shape, w_in),
    )


@pytest.mark.timeout(120)
def test_conv1d_stride_padding_groups_if_flatten_li() -> None:
    """Conv1d (stride 2, padding 1, groups 2) -> LIF -> grouped Conv1d -> IF -> Flatten ->
    Affine -> LI -> Output, two samples streamed."""
    shape_in = (4, 12)
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array(shape_in)),
            "conv1": nir.Conv1d(
                input_shape=12,
                weight=RNG.normal(0, 0.8, (6, 2, 3)),
                stride=2,
                padding=1,
                dilation=1,
                groups=2,
                bias=RNG.normal(0, 0.1, 6),
            ),
            "lif1": lif((6, 6), tau=3e-4, vth=0.6),
            "conv2": nir.Conv1d(
                input_shape=6,
                weight=RNG.normal(0.3, 0.8, (6, 1, 3)),
                stride=1,
                padding=1,
                dilation=1,
                groups=6,
                bias=np.zeros(6),
            ),
            "if2": nir.IF(
                r=np.full((6, 6), 0.7), v_threshold=np.full((6, 6), 0.5), v_reset=np.zeros((6, 6))
            ),
            "flat": nir.Flatten(input_type={"input": np.array([6, 6])}, start_dim=0),
            "fc": nir.Affine(weight=RNG.normal(0, 0.5, (3, 36)), bias=np.array([0.2, 0.0, -0.1])),
            "li": nir.LI(tau=np.full(3, 4e-4), r=np.full(3, 2.0), v_leak=np.zeros(3)),
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[
            ("input", "conv1"),
            ("conv1", "lif1"),
            ("lif1", "conv2"),
            ("conv2", "if2"),
            ("if2", "flat"),
            ("flat", "fc"),
            ("fc", "li"),
            ("li", "output"),
        ],
        type_check=False,  # nir's type inference ignores conv groups
    )
    plan = build_plan(graph, DT)
    assert [s.kind for s in plan.synapses] == ["conv", "conv", "dense"] or sorted(
        s.kind for s in plan.synapses
    ) == ["conv", "conv", "dense"]
    assert plan.depth == 3
    inputs = RNG.uniform(0, 1.5, (2, 5, *shape_in))
    recorded, expected = run_both(graph, inputs, record=("lif1", "if2"))
    assert_same(recorded, expected, "lif1")
    assert_same(recorded, expected, "if2")
    assert_same(recorded, expected, "output", values=True)


def merge_graph() -> nir.NIRGraph:
    """Conv2d -> LIF -> SumPool -> CubaLIF <- strided Conv2d (shorter branch); CubaLIF -> Flatten
    -> Affine -> CubaLIF with a recurrent Linear -> Output."""
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([2, 6, 6])),
            "conv_a": nir.Conv2d(
                input_shape=(6, 6),
                weight=RNG.normal(0.2, 0.7, (3, 2, 3, 3)),
                stride=(1, 1),
                padding=(1, 1),
                dilation=(1, 1),
                groups=1,
                bias=np.zeros(3),
            ),
            "lif_a": lif((3, 6, 6), tau=2e-4, vth=1.0),
            "pool": nir.SumPool2d(
                kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])
            ),
            "conv_b": nir.Conv2d(
                input_shape=(6, 6),
                weight=RNG.normal(0, 0.5, (3, 2, 2, 2)),
                stride=(2, 2),
                padding=(0, 0),
                dilation=(1, 1),
                groups=1,
                bias=np.zeros(3),  # a bias into a CubaLIF is refused (see below)
            ),
            "cuba_b": cuba((3, 3, 3), vth=0.8),
            "flat": nir.Flatten(input_type={"input": np.array([3, 3, 3])}, start_dim=0),
            "fc": nir.Affine(weight=RNG.normal(0.1, 0.6, (4, 27)), bias=np.zeros(4)),
            "cuba_c": cuba((4,), vth=0.5),
            "rec": nir.Linear(weight=RNG.normal(0, 0.8, (4, 4))),
            "output": nir.Output(output_type=np.array([4])),
        },
        edges=[
            ("input", "conv_a"),
            ("conv_a", "lif_a"),
            ("lif_a", "pool"),
            ("pool", "cuba_b"),
            ("input", "conv_b"),
            ("conv_b", "cuba_b"),
            ("cuba_b", "flat"),
            ("flat", "fc"),
            ("fc", "cuba_c"),
            ("cuba_c", "rec"),
            ("rec", "cuba_c"),
            ("cuba_c", "output"),
        ],
    )


def test_merge_depths_and_recurrent_plan() -> None:
    """The short branch gets one identity hop; the recurrent synapse none; depth 3."""
    plan = build_plan(merge_graph(), DT)
    by_name = {s.name: s for s in plan.synapses}
    assert by_name["conv_b"].extra_hops == 1 and by_name["pool"].extra_hops == 0
    assert by_name["rec"].back_edge and by_name["rec"].extra_hops == 0
    assert by_name["pool"].kind == "conv" and by_name["flat+fc"].kind == "dense"
    assert {n: p.depth for n, p in plan.populations.items()} == {
        "lif_a": 1,
        "cuba_b": 2,
        "cuba_c": 3,
    }


@pytest.mark.timeout(120)
def test_conv2d_pool_branch_merge_recurrent_cubalif() -> None:
    """Spikes of every population equal the NIR reference on a branch-and-merge recurrent graph."""
    graph = merge_graph()
    inputs = RNG.uniform(0, 1.2, (1, 6, 2, 6, 6))
    recorded, expected = run_both(graph, inputs, record=("lif_a", "cuba_b"))
    for node in ("lif_a", "cuba_b", "output"):
        assert_same(recorded, expected, node)


def test_bias_into_cuba_neurons_follows_the_reference(tmp_path) -> None:
    """NIR integrates a bias through the synaptic current (rising over the first steps), into a
    CubaLIF and a CubaLI, also through a recurrent edge; Lava adds it as the input of a neuron
    that spikes every step. Float backends equal the reference spike for spike (graded readout
    within 1e-9), and the emulator equals lava-fixed bit for bit."""
    from cli_runner import run as run_cli

    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([3])),
            "fc": nir.Affine(weight=RNG.normal(0.5, 0.3, (4, 3)), bias=RNG.normal(0, 0.2, 4)),
            "cuba": cuba((4,), vth=0.5),
            "rec": nir.Affine(weight=RNG.normal(0, 0.3, (4, 4)), bias=np.full(4, -0.05)),
            "out": nir.Affine(weight=RNG.normal(0, 0.5, (2, 4)), bias=np.array([0.3, -0.2])),
            "li": nir.CubaLI(
                tau_syn=np.full(2, 4e-4),
                tau_mem=np.full(2, 5e-4),
                r=np.full(2, 1.5),
                v_leak=np.full(2, 0.1),
                w_in=np.full(2, 0.8),
            ),
            "output": nir.Output(output_type=np.array([2])),
        },
        edges=[
            ("input", "fc"),
            ("fc", "cuba"),
            ("cuba", "rec"),
            ("rec", "cuba"),
            ("cuba", "out"),
            ("out", "li"),
            ("li", "output"),
        ],
        type_check=False,
    )
    nir.write(tmp_path / "g.nir", graph)
    np.save(tmp_path / "x.npy", RNG.uniform(0, 1, (20, 3)))
    args = ["simulate", str(tmp_path / "g.nir"), "--input", str(tmp_path / "x.npy")]
    args += ["--record", "cuba"]
    runs = {}
    for backend in ("snntorch", "lava-float", "loihi-emu-float", "lava-fixed", "loihi-emu"):
        out = tmp_path / f"{backend}.npz"
        assert run_cli([*args, "--backend", backend, "--out", str(out)]) == 0, backend
        with np.load(out) as saved:
            runs[backend] = {k: saved[k] for k in saved.files if not k.startswith("mksgn_")}
    reference = runs["snntorch"]
    assert 0 < reference["cuba"].mean() < 1
    for backend in ("lava-float", "loihi-emu-float"):
        assert np.array_equal(runs[backend]["cuba"], reference["cuba"]), backend
        np.testing.assert_allclose(runs[backend]["output"], reference["output"], rtol=1e-9)
    for key in reference:
        assert np.array_equal(runs["loihi-emu"][key], runs["lava-fixed"][key]), key


@pytest.mark.timeout(120)
def test_nested_graph_scale_delay() -> None:
    """A nested subgraph (Affine + LIF), then Scale + Affine composed into one Dense and a
    Delay of two steps before the last LIF."""
    inner = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([5])),
            "fc": nir.Affine(weight=RNG.normal(0.2, 0.8, (6, 5)), bias=np.zeros(6)),
            "lif": lif((6,), tau=3e-4, vth=0.7),
            "output": nir.Output(output_type=np.array([6])),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
    )
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([5])),
            "block": inner,
            "scale": nir.Scale(scale=np.linspace(0.5, 1.5, 6)),
            "delay": nir.Delay(delay=np.full(6, 2 * DT)),
            "fc2": nir.Affine(weight=RNG.normal(0.3, 0.8, (4, 6)), bias=np.zeros(4)),
            "lif2": lif((4,), tau=4e-4, vth=0.6),
            "output": nir.Output(output_type=np.array([4])),
        },
        edges=[
            ("input", "block"),
            ("block", "scale"),
            ("scale", "delay"),
            ("delay", "fc2"),
            ("fc2", "lif2"),
            ("lif2", "output"),
        ],
        type_check=False,
    )
    plan = build_plan(graph, DT)
    assert [s.extra_hops for s in plan.synapses if s.target == "lif2"] == [2]
    inputs = RNG.uniform(0, 1.5, (1, 8, 5))
    result = LavaTarget(timeout_s=120).run(graph, inputs, ("block.lif",))
    flat = nir.NIRGraph(
        nodes={
            "input": graph.nodes["input"],
            "block.fc": inner.nodes["fc"],
            "block.lif": inner.nodes["lif"],
            **{k: graph.nodes[k] for k in ("scale", "delay", "fc2", "lif2", "output")},
        },
        edges=[
            ("input", "block.fc"),
            ("block.fc", "block.lif"),
            ("block.lif", "scale"),
            ("scale", "delay"),
            ("delay", "fc2"),
            ("fc2", "lif2"),
            ("lif2", "output"),
        ],
    )
    expected = reference(flat, inputs[0])
    assert_same(result.recorded, {k: v[None] for k, v in expected.items()}, "block.lif")
    assert_same(result.recorded, {k: v[None] for k, v in expected.items()}, "output")
    no_children_left()


def test_unsupported_node_is_named() -> None:
    """A Threshold node is refused with its name and type."""
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([3])),
            "thr": nir.Threshold(threshold=np.ones(3)),
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[("input", "thr"), ("thr", "output")],
    )
    with pytest.raises(MksgnError, match=r"'thr' has type Threshold"):
        build_plan(graph, DT)


def test_recurrence_over_two_synapses_is_refused() -> None:
    """A cycle through two synapses cannot be carried by Lava's one-step buffers."""
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([3])),
            "fc": nir.Linear(weight=np.eye(3)),
            "a": lif((3,)),
            "ab": nir.Linear(weight=np.eye(3)),
            "b": lif((3,)),
            "ba": nir.Linear(weight=np.eye(3)),
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[
            ("input", "fc"),
            ("fc", "a"),
            ("a", "ab"),
            ("ab", "b"),
            ("b", "ba"),
            ("ba", "a"),
            ("b", "output"),
        ],
    )
    with pytest.raises(MksgnError, match=r"recurrent path 'ba'"):
        build_plan(graph, DT)


def feedback_chain_graph(close: tuple[str, str]) -> nir.NIRGraph:
    """input -> fb2 -> a -> fb1 -> fb2: a neuron fed back through two linear nodes, the input
    joining the second; `close` is the edge that closes the loop (through 'a' or not)."""
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([3])),
            "fb2": nir.Affine(weight=RNG.normal(0.3, 0.5, (3, 3)), bias=np.full(3, 0.1)),
            "a": lif((3,), vth=0.8),
            "fb1": nir.Linear(weight=RNG.normal(0.0, 0.6, (3, 3))),
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[("input", "fb2"), ("fb2", "a"), close, ("fb1", "fb2"), ("a", "output")],
        type_check=False,
    )


def test_feedback_through_a_linear_chain_is_lowered_and_matches_the_reference() -> None:
    """The edge that closes the loop joins two linear nodes here, but the cycle passes the neuron
    'a': it is lowered (the cycle check looks at cycles of linear nodes only) and spikes like the
    reference."""
    from mksgn.targets.emulator import EmulatorTarget
    from mksgn.targets.reference import ReferenceTarget

    graph = feedback_chain_graph(("a", "fb1"))
    plan = build_plan(graph, DT)
    assert [s.back_edge for s in plan.synapses if s.source == "a"] == [True]
    inputs = RNG.uniform(0, 1.5, (2, 8, 3))
    emulated = EmulatorTarget(fixed_point=False).run_plan(plan, inputs, ("a",)).recorded["a"]
    expected = ReferenceTarget(dtype=torch.float64).run(graph, inputs, ("a",)).recorded["a"]
    np.testing.assert_array_equal(emulated, expected)
    assert 0 < emulated.mean() < 1


def test_cycle_of_linear_nodes_is_refused() -> None:
    """fb1 -> fb2 -> fb1 without a neuron: no state carries it on Lava."""
    graph = feedback_chain_graph(("fb2", "fb1"))
    with pytest.raises(MksgnError, match="on a cycle without a neuron"):
        build_plan(graph, DT)


def same_padding_graph(kernel: int, stride: int = 1) -> nir.NIRGraph:
    """Input (2, 6, 5) -> Conv2d padding 'same' -> LIF -> Output."""
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([2, 6, 5])),
            "conv": nir.Conv2d(
                input_shape=(6, 5),
                weight=RNG.normal(0.4, 0.8, (3, 2, kernel, kernel)),
                stride=stride,
                padding="same",
                dilation=1,
                groups=1,
                bias=np.zeros(3),
            ),
            "lif": lif((3, 6, 5), tau=3e-4, vth=0.6),
            "output": nir.Output(output_type=np.array([3, 6, 5])),
        },
        edges=[("input", "conv"), ("conv", "lif"), ("lif", "output")],
        type_check=False,
    )


@pytest.mark.timeout(120)
def test_same_padding_keeps_the_shape_and_matches_the_reference() -> None:
    recorded, expected = run_both(same_padding_graph(3), RNG.uniform(0, 1.5, (1, 4, 2, 6, 5)))
    assert_same(recorded, expected, "output")


@pytest.mark.parametrize(
    ("kernel", "stride", "message"),
    [(2, 1, r"'conv' \(Conv2d\): padding 'same' with kernel \(2, 2\) needs uneven"),
     (3, 2, "padding 'same' needs stride 1")],
)  # fmt: skip
def test_same_padding_lava_cannot_do_is_refused(kernel: int, stride: int, message: str) -> None:
    """torch pads an even kernel's 'same' unevenly and refuses it with a stride; Lava's Conv would
    have padded evenly and shifted every output by one."""
    with pytest.raises(MksgnError, match=message):
        build_plan(same_padding_graph(kernel, stride), DT)


def test_wrong_input_shape_is_refused() -> None:
    """The input array must be (samples, T, *input shape)."""
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([3])),
            "fc": nir.Linear(weight=np.eye(3)),
            "a": lif((3,)),
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[("input", "fc"), ("fc", "a"), ("a", "output")],
    )
    with pytest.raises(MksgnError, match=r"expected \(samples, time steps, 3\)"):
        LavaTarget().run(graph, np.zeros((1, 4, 5)))
