"""The LavaPlan emulator: loihi-emu equals lava-fixed bit for bit (voltages and spikes of every
population) and loihi-emu-float equals lava-float spike for spike, on hand-built graphs, a tiny
MK-SGN student and random graphs; results do not depend on the batch size."""

from __future__ import annotations

import json
import re

import nir
import numpy as np
import pytest
import torch
from cli_runner import run
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from model_fixtures import joints, node_major_input, spiking_nodes, spiking_student
from test_lava_graph import cuba

from mksgn.benchmarks.support.graphs import dense_lif_graph, lif
from mksgn.convert.lava_graph import build_plan
from mksgn.convert.lava_plan import LavaPlan
from mksgn.convert.nir_export import student_to_nir
from mksgn.errors import MksgnError
from mksgn.targets.emulator import (
    DEFAULT_BATCH_SIZE,
    EmulatorTarget,
    Network,
    Series,
    repeats,
    schedule,
)
from mksgn.targets.job import one_after_another, prepare_job, side_by_side
from mksgn.targets.lava import DEFAULT_BATCH_SIZE as LAVA_BATCH_SIZE
from mksgn.targets.lava import LavaTarget
from mksgn.targets.reference import ReferenceTarget
from mksgn.targets.simulate import make_target

DT = 1e-4


def mixed_graph(seed: int = 11) -> nir.NIRGraph:
    """One graph with every case on one Lava run: graded input through Flatten + Affine into a LIF
    with a bias, read out by an Affine into an Output (a readout population, recorded as v); a
    padded Conv2d into a LIF, a SumPool into a CubaLIF that a strided Conv2d (one synapse
    shorter: an identity hop) also feeds; then a CubaLIF with a recurrent Linear (a back edge)."""
    rng = np.random.default_rng(seed)

    def conv(weight: np.ndarray, stride: int, padding: int, bias: float) -> nir.Conv2d:
        return nir.Conv2d(
            input_shape=(6, 6),
            weight=weight,
            stride=(stride, stride),
            padding=(padding, padding),
            dilation=(1, 1),
            groups=1,
            bias=np.full(weight.shape[0], bias),
        )

    nodes = {
        "input": nir.Input(input_type=np.array([2, 6, 6])),
        "flat_in": nir.Flatten(input_type={"input": np.array([2, 6, 6])}, start_dim=0),
        "fc_d": nir.Affine(weight=rng.normal(0, 0.1, (5, 72)), bias=rng.normal(0, 0.1, 5)),
        "lif_d": lif((5,), tau=5e-4, r=3.0, vth=0.5, leak=0.1),
        "readout": nir.Affine(weight=rng.normal(0, 1, (3, 5)), bias=np.array([0.1, 0, -0.2])),
        "logits": nir.Output(output_type=np.array([3])),
        "conv_a": conv(rng.normal(0.2, 0.7, (3, 2, 3, 3)), 1, 1, 0.02),
        "lif_a": lif((3, 6, 6), tau=2e-4, vth=1.0),
        "pool": nir.SumPool2d(
            kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])
        ),
        # No bias into a CubaLIF: Lava cannot filter one through the current (refused).
        "conv_b": conv(rng.normal(0, 0.5, (3, 2, 2, 2)), 2, 0, 0.0),
        "cuba_b": cuba((3, 3, 3), vth=0.8),
        "flat": nir.Flatten(input_type={"input": np.array([3, 3, 3])}, start_dim=0),
        "fc": nir.Affine(weight=rng.normal(0.1, 0.6, (4, 27)), bias=np.zeros(4)),
        "cuba_c": cuba((4,), vth=0.5),
        "rec": nir.Linear(weight=rng.normal(0, 0.8, (4, 4))),
        "output": nir.Output(output_type=np.array([4])),
    }
    edges = [
        ("input", "flat_in"),
        ("flat_in", "fc_d"),
        ("fc_d", "lif_d"),
        ("lif_d", "readout"),
        ("readout", "logits"),
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
    ]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def mixed_plan() -> LavaPlan:
    """The mixed graph's plan with conv_a kept as a Lava Conv (no weight exponent, 24-bit
    output) and conv_b and the pool as Lava Sparse matrices."""
    plan = build_plan(mixed_graph(), DT, conv_lowering="sparse")
    by_name = {syn.name: syn for syn in plan.synapses}
    by_name["conv_a"].sparse = False
    assert by_name["conv_b"].extra_hops == 1 and by_name["rec"].back_edge
    assert [by_name[n].lava_process for n in ("conv_a", "conv_b", "pool")] == [
        "Conv",
        "Sparse",
        "Sparse",
    ]
    assert by_name["flat_in+fc_d"].graded and by_name["readout"].target == "logits.readout"
    return plan


MIXED_RECORD = ("lif_d", "lif_a", "cuba_b", "cuba_c")


def assert_equal_runs(lava, emulated, exact_values: bool) -> None:
    """Identical recordings (values to float rounding unless exact_values)."""
    assert set(lava.recorded) == set(emulated.recorded)
    for node, expected in lava.recorded.items():
        got = emulated.recorded[node]
        assert got.shape == expected.shape, node
        if exact_values or np.isin(expected, (0.0, 1.0)).all():
            np.testing.assert_array_equal(got, expected, err_msg=node)
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, err_msg=node)


@pytest.fixture(scope="module")
def mixed_inputs() -> np.ndarray:
    """Three samples of six steps for the mixed graph."""
    return np.random.default_rng(5).uniform(0, 1.2, (3, 6, 2, 6, 6))


@pytest.mark.timeout(240)
@pytest.mark.parametrize("fixed", [True, False], ids=["fixed", "float"])
def test_mixed_graph_equals_lava(fixed: bool, mixed_inputs: np.ndarray) -> None:
    """Dense (graded, with bias), readout, Lava Conv, Sparse convs, identity hop and a recurrent
    CubaLIF: every population's spikes and the readout's voltage equal Lava's (fixed point: to
    the bit) on every sample. (Lava runs a recurrent graph one sample per network: streamed, a
    back edge carried the previous sample's last spikes into the next; cuba_c differed on
    samples 2 and 3.) Fixed point runs Lava batched, two samples side by side (then the third
    alone in a half-empty network), float one sample per network: both equal the emulator."""
    plan = mixed_plan()
    lava = LavaTarget(fixed_point=fixed, timeout_s=200, batch_size=2 if fixed else 1).run_plan(
        plan, mixed_inputs, MIXED_RECORD
    )
    emulated = EmulatorTarget(fixed_point=fixed, batch_size=2).run_plan(
        plan, mixed_inputs, MIXED_RECORD
    )
    assert_equal_runs(lava, emulated, exact_values=fixed)
    for node in MIXED_RECORD:
        assert 0 < lava.recorded[node].mean() < 1, f"{node}: trivial test"
    assert np.abs(lava.recorded["logits"]).max() > 0
    assert emulated.backend == ("loihi-emu" if fixed else "loihi-emu-float")
    assert emulated.steps_per_sample == lava.steps_per_sample == 6 + plan.depth


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fixed", [True, False], ids=["fixed", "float"])
def test_student_equals_lava_on_every_layer(fixed: bool) -> None:
    """An exported MK-SGN student (graded graph-conv inputs of four branches, fusion, strided
    temporal convs as Sparse, Dense readout; in fixed point its SA-SGC layer gets a residual
    synapse): every spiking layer and the logits equal Lava's; in float, Lava's spikes also
    equal the snnTorch reference's (tests/test_student_lava.py does Base-SGN). Attention over
    every joint: its folded weights are what needs the residual synapse."""
    model = spiking_student("mk-sgn", attention_hops=None)
    graph = student_to_nir(model)
    spiking = spiking_nodes(graph)
    inputs = node_major_input(model, joints(batch=2))
    plan = build_plan(graph, DT)
    lava = LavaTarget(fixed_point=fixed, timeout_s=280).run_plan(plan, inputs, spiking)
    emulated = EmulatorTarget(fixed_point=fixed).run_plan(plan, inputs, spiking)
    assert_equal_runs(lava, emulated, exact_values=fixed)
    if fixed:
        assert lava.extra["quantisation"]["layer3.synapse"]["residual_exp"] is not None
    else:
        reference = ReferenceTarget().run(graph, inputs, spiking)
        for node in spiking:
            np.testing.assert_array_equal(lava.recorded[node], reference.recorded[node], node)
    for node in spiking:
        assert lava.recorded[node].sum() > 0, f"{node} is silent: the test would prove little"


# ---------------------------------------------------------------------------- random graphs


@st.composite
def random_chains(draw: st.DrawFn) -> tuple[nir.NIRGraph, np.ndarray]:
    """A dense chain of 1-3 LIF/CubaLIF/IF layers of random widths, weights, thresholds, decays
    and biases on a graded input, sometimes with a skip connection from the input to the last
    layer (identity hops), read out by an Affine or output directly; and 2-3 samples of random
    inputs."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    widths = [draw(st.integers(1, 4)), *draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))]
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type=np.array([widths[0]]))}
    edges: list[tuple[str, str]] = []
    previous = "input"
    for index, width in enumerate(widths[1:]):
        shape = (width,)
        kind = draw(st.sampled_from(["lif", "cuba", "if"]))
        vth = draw(st.floats(0.1, 2.0))
        tau = draw(st.floats(1e-4, 1e-3))
        if kind == "lif":
            r, leak = draw(st.floats(0.5, 5.0)), draw(st.floats(-0.2, 0.5))
            neuron = lif(shape, tau=tau, r=r, vth=vth, leak=leak)
        elif kind == "cuba":
            neuron = cuba(shape, tau_syn=draw(st.floats(1e-4, 1e-3)), tau_mem=tau, vth=vth)
        else:
            neuron = nir.IF(
                r=np.full(shape, draw(st.floats(0.2, 2.0))),
                v_threshold=np.full(shape, vth),
                v_reset=np.zeros(shape),
            )
        scale = draw(st.floats(0.2, 2.0))
        nodes[f"fc{index}"] = nir.Affine(
            weight=rng.normal(0.2, scale, (width, widths[index])),
            # A bias into a CubaLIF is refused on Lava (test_lava_graph); other neurons take one.
            bias=np.zeros(width) if kind == "cuba" else rng.normal(0, 0.1, width),
        )
        nodes[f"n{index}"] = neuron
        edges += [(previous, f"fc{index}"), (f"fc{index}", f"n{index}")]
        previous = f"n{index}"
    last = len(widths) - 2
    if last > 0 and draw(st.booleans()):
        nodes["skip"] = nir.Linear(weight=rng.normal(0, 0.5, (widths[-1], widths[0])))
        edges += [("input", "skip"), ("skip", f"n{last}")]
    if draw(st.booleans()):
        nodes["readout"] = nir.Affine(weight=rng.normal(0, 1, (2, widths[-1])), bias=np.zeros(2))
        nodes["output"] = nir.Output(output_type=np.array([2]))
        edges += [(previous, "readout"), ("readout", "output")]
    else:
        nodes["output"] = nir.Output(output_type=np.array([widths[-1]]))
        edges.append((previous, "output"))
    samples, steps = draw(st.integers(2, 3)), draw(st.integers(2, 5))
    inputs = rng.uniform(-1.0, 2.0, (samples, steps, widths[0]))
    return nir.NIRGraph(nodes=nodes, edges=edges), inputs


@pytest.mark.timeout(600)
@settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=random_chains(), fixed=st.booleans())
def test_random_graphs_equal_lava(case: tuple[nir.NIRGraph, np.ndarray], fixed: bool) -> None:
    """Random dense chains: spikes of every layer equal (and fixed-point voltages of the
    readout equal to the bit), or both backends refuse the graph with the same error."""
    graph, inputs = case
    plan = build_plan(graph, DT)
    record = tuple(name for name in plan.populations if not name.endswith(".readout"))
    try:
        emulated = EmulatorTarget(fixed_point=fixed, batch_size=2).run_plan(plan, inputs, record)
    except MksgnError as error:  # a graph quantize_plan cannot represent: Lava refuses it too
        event("refused")
        with pytest.raises(MksgnError, match=re.escape(str(error))):
            LavaTarget(fixed_point=fixed, timeout_s=120).run_plan(plan, inputs, record)
        return
    event("compared with lava-fixed" if fixed else "compared with lava-float")
    lava = LavaTarget(fixed_point=fixed, timeout_s=120).run_plan(plan, inputs, record)
    assert_equal_runs(lava, emulated, exact_values=fixed)


# ---------------------------------------------------------------------------- emulator only


def test_schedule_runs_each_population_over_the_steps_its_records_need() -> None:
    """Blocks come after the blocks feeding them; a population outside a cycle runs only its T
    steps from its reset, a cycle (cuba_c with its recurrent Linear) from step 1 (its steps
    before the reset reach it after, through the recurrent synapse), and so does what feeds the
    cycle; populations no recorded one depends on are left out."""
    plan = mixed_plan()
    steps = 5
    blocks = schedule(plan, steps, tuple(plan.records[n][0] for n in MIXED_RECORD))
    by_name = {name: block for block in blocks for name in block.populations}
    assert set(by_name) == {"lif_d", "lif_a", "cuba_b", "cuba_c"}
    order = [block.populations[0] for block in blocks]
    assert order.index("lif_a") < order.index("cuba_b") < order.index("cuba_c")
    for name in ("lif_d", "lif_a", "cuba_b", "cuba_c"):
        depth = plan.populations[name].depth
        assert by_name[name].last == depth + steps, name
        assert by_name[name].first == (depth + 1 if name == "lif_d" else 1), name
        assert by_name[name].cyclic == (name == "cuba_c")
    only = schedule(plan, steps, ("lif_d",))
    assert [block.populations for block in only] == [("lif_d",)]


def delayed_graph() -> nir.NIRGraph:
    """A biased LIF, which spikes before its NIR step 0 arrives, through a two-step Delay into a
    second LIF: the delay line carries those early spikes past the second LIF's reset."""
    rng = np.random.default_rng(3)
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([4])),
            "fc": nir.Affine(weight=rng.normal(0.3, 0.6, (5, 4)), bias=np.full(5, 0.4)),
            "lif": lif((5,), tau=3e-4, vth=0.5),
            "delay": nir.Delay(delay=np.full(5, 2 * DT)),
            "fc2": nir.Linear(weight=rng.normal(0.4, 0.5, (3, 5))),
            "lif2": lif((3,), tau=4e-4, vth=0.4),
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[
            ("input", "fc"),
            ("fc", "lif"),
            ("lif", "delay"),
            ("delay", "fc2"),
            ("fc2", "lif2"),
            ("lif2", "output"),
        ],
        type_check=False,
    )


@pytest.mark.timeout(240)
@pytest.mark.parametrize("fixed", [True, False], ids=["fixed", "float"])
def test_a_delay_line_runs_its_source_from_step_one(fixed: bool) -> None:
    """Behind a NIR Delay the source's steps before its reset reach the target after the
    target's reset: the schedule runs the source from step 1, and every sample equals Lava's
    (which gives such a plan a fresh network per sample: streamed, the delay line carried a
    sample's last steps into the next) and, in float, the reference's."""
    plan = build_plan(delayed_graph(), DT)
    assert plan.carries_over and not mixed_plan_without_cycle().carries_over
    blocks = {block.populations[0]: block for block in schedule(plan, 6, ("lif2",))}
    assert blocks["lif"].first == 1 and blocks["lif2"].first == plan.populations["lif2"].depth + 1
    inputs = np.random.default_rng(4).uniform(0, 1.0, (2, 6, 4))
    record = ("lif", "lif2")
    lava = LavaTarget(fixed_point=fixed, timeout_s=200).run_plan(plan, inputs, record)
    emulated = EmulatorTarget(fixed_point=fixed).run_plan(plan, inputs, record)
    assert_equal_runs(lava, emulated, exact_values=fixed)
    assert 0 < emulated.recorded["lif2"].mean() < 1
    if not fixed:
        reference = ReferenceTarget().run(delayed_graph(), inputs, record)
        for node in record:
            np.testing.assert_array_equal(emulated.recorded[node], reference.recorded[node])


def mixed_plan_without_cycle() -> LavaPlan:
    """The mixed plan without its recurrent synapse: depth-equalising hops only."""
    plan = mixed_plan()
    plan.synapses = [syn for syn in plan.synapses if not syn.back_edge]
    assert any(syn.extra_hops for syn in plan.synapses)
    return plan


def test_silent_and_repeated_steps_are_multiplied_once() -> None:
    """A synapse multiplies each distinct step once: a direct-coded input repeated over T steps
    is one product, an all-zero step none, and the result equals the product of every step."""
    plan = mixed_plan()
    inputs = np.random.default_rng(2).uniform(0, 1.2, (2, 5, 2, 6, 6))
    network = Network(prepare_job(plan, inputs, (), False))
    syn = next(s for s in network.synapses if s.source == plan.input_name)
    columns_seen = []
    matrix = syn.matrix

    class Counting:
        def __matmul__(self, columns):
            columns_seen.append(columns.shape[0])
            return matrix @ columns

    syn.matrix = Counting()
    values = torch.as_tensor(np.random.default_rng(3).uniform(0, 1, (1, 2, 72)))
    steps = torch.cat([values, values, torch.zeros_like(values), values * 2], dim=0)
    pattern = repeats(steps)
    assert pattern == [0, 0, -1, 3]
    sent = network.transmit(syn, Series(steps, 1, pattern))
    assert columns_seen == [2 * 2]  # two distinct steps of two samples
    syn.matrix = matrix
    every_step = matrix @ steps.reshape(-1, 72)
    torch.testing.assert_close(sent.values.reshape(every_step.shape), every_step, rtol=0, atol=0)
    assert sent.pattern == pattern


@pytest.mark.parametrize("fixed", [True, False], ids=["fixed", "float"])
def test_batch_size_does_not_change_results(fixed: bool) -> None:
    """Batches of 1, 7 and all 15 samples give identical recordings (one FixedPlan per run)."""
    plan = mixed_plan()
    inputs = np.random.default_rng(2).uniform(0, 1.2, (15, 5, 2, 6, 6))
    runs = [
        EmulatorTarget(fixed_point=fixed, batch_size=size).run_plan(plan, inputs, MIXED_RECORD)
        for size in (1, 7, 15)
    ]
    for other in runs[1:]:
        for node, values in runs[0].recorded.items():
            np.testing.assert_array_equal(other.recorded[node], values, err_msg=node)
    assert runs[0].recorded["cuba_c"].shape == (15, 5, 4)
    assert 0 < runs[0].recorded["lif_a"].mean() < 1


def test_wrong_input_shape_is_refused() -> None:
    """Inputs must be (samples, T, *input shape)."""
    with pytest.raises(MksgnError, match=r"expected \(samples, time steps, 2, 6, 6\)"):
        EmulatorTarget().run_plan(mixed_plan(), np.zeros((1, 4, 2, 6, 5)))


def test_fixed_point_overflow_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights too large for the 24-bit current (Lava would wrap it around) stop the run with
    an error naming the layer."""
    import mksgn.convert.fixed_point as fixed_point

    quantize = fixed_point.quantize_plan

    def too_large(plan: LavaPlan, *args: object, **kwargs: object) -> fixed_point.FixedPlan:
        fixed = quantize(plan, *args, **kwargs)
        for syn in fixed.synapses:
            if syn.name == "flat+fc":
                syn.weight, syn.weight_exp = np.abs(syn.weight), 7
        return fixed

    monkeypatch.setattr(fixed_point, "quantize_plan", too_large)
    inputs = np.random.default_rng(2).uniform(0, 1.2, (2, 5, 2, 6, 6))
    with pytest.raises(MksgnError, match=r"layer 'cuba_c': fixed-point overflow"):
        EmulatorTarget().run_plan(mixed_plan(), inputs)


def test_a_forgotten_current_is_checked_on_its_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """An snnTorch Leaky population keeps no current (u = a_in << 6 every step, never stored):
    its 24-bit limit is still checked, on the input, and a run within it is not refused."""
    import mksgn.convert.fixed_point as fixed_point

    graph = dense_lif_graph(np.random.default_rng(0).uniform(0.5, 1, (3, 4)))
    plan, inputs = build_plan(graph, 1e-4), np.ones((2, 3, 4))
    assert EmulatorTarget().run_plan(plan, inputs).recorded["output"].any()
    quantize = fixed_point.quantize_plan

    def raised_exponent(plan: LavaPlan, *args: object, **kwargs: object) -> object:
        fixed = quantize(plan, *args, **kwargs)
        fixed.synapses[0].weight_exp = 0  # the calibrated exponent is well below 0
        return fixed

    monkeypatch.setattr(fixed_point, "quantize_plan", raised_exponent)
    with pytest.raises(MksgnError, match=r"layer 'lif'.*current u wrapped around 24 bits"):
        EmulatorTarget().run_plan(plan, inputs)


def test_backends_and_cli_default() -> None:
    """make_target knows both emulator backends; without --batch-size each backend takes its own
    default."""
    from mksgn.cli import cli

    assert make_target("loihi-emu", batch_size=3).name == "loihi-emu"
    assert make_target("loihi-emu-float").batch_size == DEFAULT_BATCH_SIZE
    params = {p.name: p for p in cli.commands["simulate"].params}
    assert (
        f"{DEFAULT_BATCH_SIZE} on loihi-emu, {LAVA_BATCH_SIZE} on Lava" in params["batch_size"].help
    )
    assert make_target("lava-float").batch_size == LAVA_BATCH_SIZE
    assert make_target("lava-fixed", batch_size=3).batch_size == 3
    assert {p.name for p in cli.commands["energy"].params} >= {"batch_size"}
    with pytest.raises(MksgnError, match="batch size"):
        EmulatorTarget(batch_size=0)


def test_simulate_cli_with_batches(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """`mksgn simulate --backend loihi-emu --batch-size 2` runs 5 samples in 3 batches (a progress
    bar on stderr) and predicts what the emulator's own run predicts."""
    graph = mixed_graph()
    graph_file = tmp_path / "mixed.nir"
    nir.write(graph_file, graph)
    inputs = np.random.default_rng(4).uniform(0, 1.2, (5, 4, 2, 6, 6))
    np.save(tmp_path / "x.npy", inputs)
    args = ["simulate", str(graph_file), "--input", str(tmp_path / "x.npy"), "--json"]
    assert run([*args, "--backend", "loihi-emu", "--batch-size", "2"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["backend"] == "loihi-emu" and summary["samples"] == 5
    assert "5/5" in captured.err  # the progress bar
    expected = EmulatorTarget().run(graph, inputs).recorded[next(iter(graph.outputs))]
    assert summary["predictions"] == expected.mean(axis=1).argmax(axis=1).tolist()
    assert run([*args, "--backend", "loihi-emu", "--batch-size", "0"]) == 2


def test_convolutions_run_as_kernels_float32_only_where_exact() -> None:
    """Conv synapses run as torch kernels, not expanded matrices; in fixed point the spike-driven
    ones use float32 (their sums stay below 2**24, so the Lava parity tests above cover that
    path) and the graded input layer float64."""
    import torch

    from mksgn.targets.emulator import ConvKernel, Network
    from mksgn.targets.job import prepare_job

    model = spiking_student("mk-sgn")
    plan = build_plan(student_to_nir(model), DT)
    network = Network(prepare_job(plan, node_major_input(model, joints(batch=1)), (), True))
    kernels = [s for s in network.synapses if isinstance(s.matrix, ConvKernel)]
    assert len(kernels) >= sum(s.kind == "conv" for s in plan.synapses)
    dtypes = {(s.graded, s.matrix.dtype) for s in kernels}
    assert dtypes == {(True, torch.float64), (False, torch.float32)}
    # The pointwise products run in int8, spikes and graded input alike (the parity tests above
    # cover them).
    pointwise = [s for s in kernels if s.matrix.pointwise]
    assert {s.graded for s in pointwise} == {False, True}
    assert all(s.matrix.product.int8 is not None for s in pointwise)


def test_voltages_in_float32_equal_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    """In fixed point, the student's populations (their currents forget themselves) run v in
    float32, whatever their decays (β from 0.5 up: 2048/4096 kept and values no power of two
    divides); spikes and voltages equal those of an all-float64 run."""
    from mksgn.targets import emulator, emulator_neurons

    model = spiking_student("mk-sgn")
    graph = student_to_nir(model)
    spiking = spiking_nodes(graph)
    inputs = node_major_input(model, joints(batch=3))
    state_dtypes: dict[str, set[torch.dtype]] = {}

    def recording_lif(pop, u, v, a_in):  # fixed_lif, noting the dtype of v
        state_dtypes.setdefault(pop.name, set()).add(v.dtype)
        return emulator_neurons.fixed_lif(pop, u, v, a_in)

    monkeypatch.setattr(emulator, "fixed_lif", recording_lif)
    narrow = EmulatorTarget().run(graph, inputs, spiking)
    assert set().union(*state_dtypes.values()) == {torch.float32}
    kept = {
        4096 - pop.dv
        for pop in Network(
            prepare_job(build_plan(graph, DT), inputs, (), True)
        ).populations.values()
    }
    assert 2048 in kept and any(4096 % k for k in kept)
    monkeypatch.setattr(emulator, "float32_room", lambda pop: 0.0)
    state_dtypes.clear()
    wide = EmulatorTarget().run(graph, inputs, spiking)
    assert set().union(*state_dtypes.values()) == {torch.float64}
    for node in [*spiking, *graph.outputs]:
        np.testing.assert_array_equal(narrow.recorded[node], wide.recorded[node], node)


@pytest.mark.parametrize("kept", [0, 1, 7, 1000, 2048, 2049, 3001, 4095, 4096])
def test_float32_decay_equals_float64(kept: int) -> None:
    """Lava's integer decay of 24-bit values in float32 (in two parts where kept is no divisor
    of 4096) equals float64's, at the extremes and signs of the values."""
    from mksgn.targets.emulator_neurons import decay_

    rng = np.random.default_rng(kept)
    values = rng.integers(-(2**23) + 1, 2**23, 20_000).astype(np.float64)
    values[:6] = [2**23 - 1, -(2**23) + 1, 4095, -4095, 4096, -1]
    wide, narrow = torch.tensor(values), torch.tensor(values, dtype=torch.float32)
    decay_(wide, kept)
    decay_(narrow, kept)
    exact = np.sign(values) * ((np.abs(values).astype(np.int64) * kept) >> 12)
    np.testing.assert_array_equal(wide.numpy(), exact)
    np.testing.assert_array_equal(narrow.numpy().astype(np.float64), exact)


@pytest.mark.parametrize(("samples", "batch"), [(5, 2), (4, 4), (3, 8), (1, 1)])
def test_batched_stream_round_trip(samples: int, batch: int) -> None:
    """side_by_side puts sample g·batch + b in block b during group g (a short last group padded
    with silence); one_after_another undoes it for a population's series."""
    period, shape = 3, (2, 1, 2)
    stream = np.arange(samples * period * 4, dtype=np.float64).reshape(samples * period, *shape)
    lava_input = np.moveaxis(stream, 0, -1)  # (*shape, time), as LavaJob.stream_data gives
    batched = side_by_side(lava_input, samples, period, batch)
    groups = -(-samples // batch)
    assert batched.shape == (batch * 4, groups * period)
    for sample in range(samples):
        group, block = divmod(sample, batch)
        expected = stream[sample * period : (sample + 1) * period].reshape(period, 4).T
        got = batched[block * 4 : (block + 1) * 4, group * period : (group + 1) * period]
        np.testing.assert_array_equal(got, expected)
    assert not batched[:, -period:][4 * (samples - (groups - 1) * batch) :].any()
    np.testing.assert_array_equal(
        one_after_another(batched.T, samples, period, batch, shape), stream
    )


def test_freed_memory_is_kept_during_a_run_and_returned_after() -> None:
    """Inside freed_memory_reused a freed 256 MiB array stays in the process for the next batch;
    leaving gives it back to the system."""
    from mksgn.benchmarks.support.process_probes import memory_status
    from mksgn.targets.memory import freed_memory_reused

    mib = 2**20
    with freed_memory_reused():
        before = memory_status("VmRSS")
        array = np.ones(256 * mib // 8)
        del array
        kept = memory_status("VmRSS") - before
    returned = memory_status("VmRSS") - before
    assert kept > 200 * mib and returned < 64 * mib, (kept / mib, returned / mib)
