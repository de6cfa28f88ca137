"""The Loihi 2 resource report of `mksgn convert`: counts checked by hand on tiny graphs, core
counts at the per-core limits, and the limits a layer breaks (issue 16)."""

from __future__ import annotations

import json
from pathlib import Path

import nir
import numpy as np
from cli_runner import run

from mksgn.convert import loihi2_resources
from mksgn.convert.fixed_point import quantize_plan
from mksgn.convert.lava_graph import build_plan

WEIGHT = np.array(
    [
        [0.5, -0.25, 0.75, 0.5],
        [0.0, 0.5, 0.0, -0.5],  # zeros are not stored
        [0.25, 0.25, 0.5, 0.0],
    ]
)


def dense_graph() -> nir.NIRGraph:
    """Input(4) -> Affine(3x4, 3 zero weights) -> LIF(3) -> Output."""
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([4])),
            "fc": nir.Affine(weight=WEIGHT, bias=np.zeros(3)),
            "lif": nir.LIF(
                tau=np.full(3, 2e-4),
                r=np.full(3, 2.0),
                v_leak=np.zeros(3),
                v_threshold=np.ones(3),
                v_reset=np.zeros(3),
            ),
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
    )


def report(graph: nir.NIRGraph) -> dict:
    """The resource report of a graph quantised for inputs within ±1."""
    plan = build_plan(graph)
    return loihi2_resources.loihi2_resources(plan, quantize_plan(plan, 1.0))


def test_counts_of_a_dense_layer_match_a_hand_count() -> None:
    """9 non-zero weights of 8 bits, fan-in 4 (first row), the input's widest fan-out 3."""
    result = report(dense_graph())
    (layer,) = result["layers"]
    assert layer["neurons"] == 3 and layer["synapses"] == 9 and layer["stored_weights"] == 9
    assert layer["synaptic_memory_bits"] == 9 * 8 == result["synaptic_memory_bits"]
    assert layer["max_fan_in"] == 4 and layer["max_fan_out"] == 0
    assert result["input_max_fan_out"] == 3
    assert (result["cores"], result["chips"], result["violations"]) == (1, 1, [])


def test_a_shared_conv_kernel_is_stored_once() -> None:
    """A conv stores its kernel once, whether the CPU simulation runs it as a Lava Conv or as a
    Sparse matrix (Loihi 2 compresses convolutional connectivity)."""
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([1, 6])),
            "conv": nir.Conv1d(
                input_shape=6,
                weight=np.array([[[0.5, 1.0, 0.5]]]),
                stride=1,
                padding=1,
                dilation=1,
                groups=1,
                bias=np.zeros(1),
            ),
            "lif": nir.LIF(
                tau=np.full((1, 6), 2e-4),
                r=np.full((1, 6), 2.0),
                v_leak=np.zeros((1, 6)),
                v_threshold=np.ones((1, 6)),
                v_reset=np.zeros((1, 6)),
            ),
            "output": nir.Output(output_type=np.array([1, 6])),
        },
        edges=[("input", "conv"), ("conv", "lif"), ("lif", "output")],
    )
    by_kind = {}
    for lowering in ("conv", "sparse"):
        plan = build_plan(graph, conv_lowering=lowering)
        (layer,) = loihi2_resources.loihi2_resources(plan, quantize_plan(plan, 1.0))["layers"]
        by_kind[lowering] = layer
    # 6 outputs, 3 taps each but the two edges lose one to padding: 16 connections.
    assert by_kind["conv"]["synapses"] == by_kind["sparse"]["synapses"] == 16
    assert by_kind["conv"]["stored_weights"] == by_kind["sparse"]["stored_weights"] == 3
    assert by_kind["sparse"]["max_fan_in"] == 3 and by_kind["sparse"]["max_fan_out"] == 0


def test_cores_at_the_limits_and_the_limits_broken(monkeypatch) -> None:
    """One neuron over the per-core neuron limit takes a second core; a fan-in wider than one
    core's synaptic memory, and more cores than a chip has, are named."""
    monkeypatch.setattr(loihi2_resources, "NEURONS_PER_CORE", 3)
    assert report(dense_graph())["cores"] == 1
    monkeypatch.setattr(loihi2_resources, "NEURONS_PER_CORE", 2)
    assert report(dense_graph())["cores"] == 2
    monkeypatch.setattr(loihi2_resources, "SYNAPTIC_MEMORY_BITS_PER_CORE", 3 * 8)
    monkeypatch.setattr(loihi2_resources, "CORES_PER_CHIP", 2)
    result = report(dense_graph())
    assert result["cores"] == 3 and result["chips"] == 2  # ceil(72 bits / 24) = 3 cores
    assert any("'lif'" in v and "fan-in of 4 weights" in v for v in result["violations"])
    assert any("needs 3 cores" in v for v in result["violations"])
    assert any("needs 2 chips" in v for v in result["violations"])


def test_convert_json_carries_the_report(tmp_path: Path, capsys) -> None:
    """`convert --json` prints one object whose "loihi2" key has the documented fields; the
    text output shows the table."""
    nir.write(tmp_path / "g.nir", dense_graph())
    args = ["convert", str(tmp_path / "g.nir"), "--out", str(tmp_path / "a"), "--json"]
    assert run(args) == 0
    resources = json.loads(capsys.readouterr().out)["loihi2"]
    for key, kind in (
        ("cores", int),
        ("chips", int),
        ("neurons", int),
        ("synapses", int),
        ("synaptic_memory_bits", int),
        ("layers", list),
        ("violations", list),
    ):
        assert isinstance(resources[key], kind), key
    assert resources["synapses"] == 9 == sum(layer["synapses"] for layer in resources["layers"])
    assert run(["convert", str(tmp_path / "g.nir"), "--out", str(tmp_path / "b")]) == 0
    assert "Loihi 2: 1 neuro core(s) on 1 chip(s)" in capsys.readouterr().out
