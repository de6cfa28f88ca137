"""Loihi 2-style quantisation: integer parameters, round trips, error report, overflow errors."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from mksgn.benchmarks.support.graphs import lif
from mksgn.convert.fixed_point import (
    BIAS_EXP_MAX,
    VTH_MAX,
    quantize_decay,
    quantize_input,
    quantize_plan,
    quantize_weights,
)
from mksgn.convert.lava_graph import build_plan
from mksgn.errors import MksgnError
from mksgn.targets.lava import LavaTarget

RNG = np.random.default_rng(3)


def dense_graph(vth: float = 1.0, bias: float = 0.0) -> nir.NIRGraph:
    """Input(4) -> Affine -> LIF(6) -> Affine -> Output(3)."""
    shape = (6,)
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([4])),
            "fc": nir.Affine(weight=RNG.normal(0.3, 0.6, (6, 4)), bias=np.full(6, bias)),
            "lif": nir.LIF(
                tau=np.full(shape, 5e-4),
                r=np.full(shape, 5.0),
                v_leak=np.zeros(shape),
                v_threshold=np.full(shape, vth),
                v_reset=np.zeros(shape),
            ),
            "readout": nir.Affine(weight=RNG.normal(0, 1, (3, 6)), bias=np.zeros(3)),
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "readout"), ("readout", "output")],
    )


def test_weights_round_trip_within_one_step() -> None:
    """Integer mantissa · 2**exp reproduces each weight to within one quantisation step."""
    weight = RNG.normal(0, 1000, (20, 30))
    integer, exp, rel_max, rel_mean = quantize_weights(weight, exp_fixed=False, layer="fc")
    assert integer.dtype == np.int32 and isinstance(exp, int) and exp == 4
    assert integer.min() >= -256 and integer.max() <= 254 and np.all(integer % 2 == 0)
    step = 2 * 2.0**exp
    assert np.abs(integer * 2.0**exp - weight).max() < step
    assert 0 < rel_max < step / np.abs(weight).max() and 0 < rel_mean < 1


def test_small_weights_keep_eight_bits_through_a_negative_exponent() -> None:
    """Weights of a few fixed-point units (a wide readout) use all 8 bits with exponent < 0,
    down to Loihi's -8; weights beyond 254 << 7 are refused."""
    weight = RNG.normal(0, 2.0, 50)
    integer, exp, rel_max, _ = quantize_weights(weight, exp_fixed=False, layer="readout")
    assert exp < 0 and np.abs(integer).max() > 127
    assert rel_max < 2 * 2.0**exp / np.abs(weight).max()
    _, exp, *_ = quantize_weights(np.array([1e-6, -1e-6]), exp_fixed=False, layer="tiny")
    assert exp == -8
    with pytest.raises(MksgnError, match=r"layer 'huge'"):
        quantize_weights(np.array([254.0 * 2**8]), exp_fixed=False, layer="huge")


def test_rounding_keeps_each_rows_sum() -> None:
    """Many weights below half a step (a folded attention row) are not all dropped: each row's
    quantised sum equals its real sum to within one step, and no weight moves a full step."""
    weight = np.concatenate([np.full((3, 1), 254.0), RNG.uniform(0.2, 0.9, (3, 300))], axis=1)
    integer, exp, *_ = quantize_weights(weight, exp_fixed=False, layer="attention")
    assert exp == 0
    step = 2.0
    assert np.all(np.abs(integer - weight) < step)
    np.testing.assert_array_less(np.abs(integer.sum(axis=1) - weight.sum(axis=1)), step)
    assert (integer[:, 1:] != 0).sum() > 100  # plain rounding would zero every one of them


def test_wide_range_synapse_gets_a_residual_part() -> None:
    """A synapse whose 8-bit weights are mostly lost (a few graph-edge weights beside many small
    attention weights) gets a second, finer part; together they are far more accurate. netx
    artifacts (no exponents) and residual_synapses=False keep one part."""
    graph = dense_graph()
    weight = RNG.uniform(0.001, 0.004, (3, 6))
    weight[:, 0] = 1.0
    graph.nodes["readout"] = nir.Affine(weight=weight, bias=np.zeros(3))
    plan = build_plan(graph)
    one_part = quantize_plan(plan, 1.0, residual_synapses=False).synapses[1]
    two_parts = quantize_plan(plan, 1.0).synapses[1]
    assert one_part.residual is None and one_part.mean_error_per_weight > 0.25
    assert two_parts.residual is not None and two_parts.residual_exp < two_parts.weight_exp
    assert two_parts.mean_error_per_weight < one_part.mean_error_per_weight / 10
    assert np.array_equal(two_parts.weight, one_part.weight)
    assert quantize_plan(plan, 1.0, weight_exponents=False).synapses[1].residual is None


def test_input_gets_the_bits_the_accumulator_allows() -> None:
    """The graded input's shift grows until Lava's int32 sum could overflow: a wider fan-in or a
    larger input range leaves fewer input bits, and the worst case stays below 2**31."""
    graph = dense_graph()
    plan = build_plan(graph)
    shift = quantize_plan(plan, 1.0).input_shift
    assert quantize_plan(plan, 64.0).input_shift < shift
    fixed = quantize_plan(plan, 64.0)
    first = fixed.synapses[0]
    assert np.abs(first.weight).sum(axis=1).max() * 64.0 * 2**fixed.input_shift < 2**31


def test_conv_weights_beyond_eight_bits_are_refused() -> None:
    """Lava's Conv has no weight exponent: weights over 254 units cannot be stored."""
    with pytest.raises(MksgnError, match=r"layer 'conv'.*8-bit"):
        quantize_weights(np.array([300.0, -2.0]), exp_fixed=True, layer="conv")


def test_decays_are_twelve_bit() -> None:
    """du counts from 1 (Lava adds one), dv from 0; 1/5 of 4096 rounds to 819."""
    assert quantize_decay(1.0, 1, "du", "l") == 4095
    assert quantize_decay(0.2, 0, "dv", "l") == 819
    assert quantize_decay(0.0, 0, "dv", "l") == 0


def test_plan_parameters_are_integers_with_report() -> None:
    """Every parameter handed to Lava is an integer within its bit width; the report has errors."""
    plan = build_plan(dense_graph(bias=0.05))
    fixed = quantize_plan(plan, input_abs_max=2.0)
    for pop in fixed.populations.values():
        params = pop.lava_params()
        for key in ("du", "dv", "vth", "bias_exp"):
            assert isinstance(params[key], int), key
        assert params["bias_mant"].dtype == np.int32
        assert 0 <= params["bias_exp"] <= BIAS_EXP_MAX and 1 <= params["vth"] <= VTH_MAX
        assert np.abs(params["bias_mant"]).max() <= 4095
    lif = fixed.populations["lif"]
    assert lif.du == 4095 and lif.dv == round(0.2 * 4096)
    # vth·S/64 rounds to the integer threshold
    assert abs(lif.vth - plan.populations["lif"].vth * lif.scale / 64) <= 0.5
    for syn in fixed.synapses:
        assert syn.weight.dtype == np.int32
    report = fixed.report()
    assert set(report) >= {"fc", "readout", "lif", "output.readout"}
    assert 0 < report["fc"]["max_error_of_peak_weight"] < 0.01


def test_bias_overflow_names_the_layer() -> None:
    """A bias far beyond the threshold cannot be represented: the scale that fits the bias
    leaves no threshold, and the Error names the layer."""
    plan = build_plan(dense_graph(vth=1e-3, bias=1e4))
    with pytest.raises(MksgnError, match=r"layer 'lif': threshold .* too small relative"):
        quantize_plan(plan, 1.0)


def test_input_overflow() -> None:
    """Inputs beyond 24 bits at the chosen scale are refused."""
    assert quantize_input(np.array([1.5, -2.0]), 3).tolist() == [12, -16]
    with pytest.raises(MksgnError, match=r"24-bit"):
        quantize_input(np.array([1e9]), 4)
    with pytest.raises(MksgnError, match=r"24-bit"):
        quantize_input(np.array([-1e9], dtype=np.float32), 4)


@pytest.mark.parametrize("shift", [-3, 0, 5, 12])
def test_float32_input_quantises_as_float64(shift: int) -> None:
    """float32 inputs (the datasets' dtype), scaled in float32, give the integers float64 gives,
    ties rounding to even included."""
    rng = np.random.default_rng(shift + 3)
    data = (rng.standard_normal(5000) * 2.0 ** (10 - shift)).astype(np.float32)
    data[:4] = np.array([0.5, 1.5, -2.5, 3.0], dtype=np.float32) * np.float32(2.0**-shift)
    got = quantize_input(data, shift)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, quantize_input(data.astype(np.float64), shift))
    assert got[:4].tolist() == [0, 2, -2, 3]


@pytest.mark.timeout(120)
def test_lava_fixed_agrees_with_float() -> None:
    """lava-fixed spikes agree with lava-float on most steps; outputs close in float units."""
    graph = dense_graph()
    inputs = RNG.uniform(0, 1.5, (2, 8, 4))
    floating = LavaTarget(timeout_s=60).run(graph, inputs, ("lif",))
    fixed = LavaTarget(fixed_point=True, timeout_s=60).run(graph, inputs, ("lif",))
    spikes_f, spikes_q = floating.recorded["lif"], fixed.recorded["lif"]
    assert 0 < spikes_f.mean() < 1
    assert (spikes_f == spikes_q).mean() >= 0.9
    assert "quantisation" in fixed.extra and fixed.backend == "lava-fixed"


def conv_graph() -> nir.NIRGraph:
    """Input (graded) -> pointwise Conv1d -> LIF -> grouped temporal Conv1d (k 3, stride 2,
    padding 1) on spikes -> LIF -> Output: the two convolutions a student lowers to."""
    nodes, channels, frames = 3, 4, 8
    width = nodes * channels

    def conv(weight: np.ndarray, stride: int, padding: int, groups: int) -> nir.Conv1d:
        return nir.Conv1d(
            input_shape=frames,
            weight=weight,
            stride=stride,
            padding=padding,
            dilation=1,
            groups=groups,
            bias=np.zeros(weight.shape[0]),
        )

    temporal = np.tile(RNG.normal(0.3, 0.5, (channels, channels, 3)), (nodes, 1, 1))
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([nodes * 3, frames])),
            "spatial": conv(RNG.normal(0.2, 0.5, (width, nodes * 3, 1)), 1, 0, 1),
            "lif1": lif((width, frames), tau=3e-4, vth=0.8),
            "temporal": conv(temporal, 2, 1, nodes),
            "lif2": lif((width, frames // 2), tau=3e-4),
            "output": nir.Output(output_type=np.array([width, frames // 2])),
        },
        edges=[
            ("input", "spatial"),
            ("spatial", "lif1"),
            ("lif1", "temporal"),
            ("temporal", "lif2"),
            ("lif2", "output"),
        ],
        type_check=False,
    )


@pytest.mark.timeout(120)
def test_sparse_convs_in_fixed_point() -> None:
    """Convolutions lowered to Lava Sparse run in fixed point and agree with lava-float. Sparse
    has a weight exponent (Lava Conv has none), so the graded input gets 8 more bits with the same
    weight mantissas (exponent -8 shifts the sum back), and lif1 agrees with float at least as
    well as through Conv."""
    graph = conv_graph()
    sparse_plan, conv_plan = build_plan(graph), build_plan(graph, conv_lowering="conv")
    assert [s.lava_process for s in sparse_plan.synapses] == ["Sparse", "Sparse"]
    fixed_sparse, fixed_conv = quantize_plan(sparse_plan, 1.5), quantize_plan(conv_plan, 1.5)
    assert np.array_equal(fixed_sparse.synapses[0].weight, fixed_conv.synapses[0].weight)
    assert fixed_sparse.synapses[0].weight_exp == fixed_conv.synapses[0].weight_exp - 8
    assert fixed_sparse.input_shift == fixed_conv.input_shift + 8
    assert fixed_conv.synapses[1].weight_exp == 0
    inputs = RNG.uniform(0, 1.5, (2, 6, 9, 8))
    record = ("lif1", "lif2")
    sparse = LavaTarget(fixed_point=True, timeout_s=60).run_plan(sparse_plan, inputs, record)
    conv = LavaTarget(fixed_point=True, timeout_s=60).run_plan(conv_plan, inputs, record)
    floating = LavaTarget(timeout_s=60).run_plan(sparse_plan, inputs, record)
    agreement = {
        name: (result.recorded["lif1"] == floating.recorded["lif1"]).mean()
        for name, result in (("sparse", sparse), ("conv", conv))
    }
    assert agreement["sparse"] >= agreement["conv"]
    for node in record:
        reference = floating.recorded[node]
        assert 0 < reference.mean() < 1, node
        assert (sparse.recorded[node] == reference).mean() >= 0.9, node
        assert (conv.recorded[node] == reference).mean() >= 0.9, node
