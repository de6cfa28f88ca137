"""NIR export of the students (spike-exact against the torch model), ONNX export of the teacher,
and refusal of files and graphs that cannot be read or run."""

from __future__ import annotations

from pathlib import Path

import h5py
import nir
import numpy as np
import pytest
import torch
from cli_runner import run
from model_fixtures import (
    CLASSES,
    FRAMES,
    STEPS,
    joints,
    node_major_input,
    node_major_spikes,
    randomize_inference_state,
    save_model,
    spiking_student,
    tiny_config,
)

from mksgn.convert.nir_export import check_same_graph, student_to_nir, write_nir
from mksgn.convert.nir_io import read_nir
from mksgn.convert.nir_validation import validate_graph
from mksgn.convert.onnx_export import teacher_to_onnx
from mksgn.errors import MksgnError
from mksgn.targets.reference import ReferenceTarget
from mksgn.train.data.layout import NTU_25
from mksgn.train.models import build_model


@pytest.mark.parametrize("name", ["base-sgn", "mk-sgn"])
def test_reference_reproduces_every_layer_spike_for_spike(name: str, tmp_path: Path) -> None:
    model = spiking_student(name)
    x = joints()
    with torch.no_grad():
        out = model(x)
    path = write_nir(student_to_nir(model), tmp_path / "model.nir")
    graph = read_nir(path)
    lif_nodes = tuple(n for n in graph.nodes if n.endswith(".lif"))
    result = ReferenceTarget().run(graph, node_major_input(model, x), lif_nodes)
    modalities = model.modalities
    width = out.spikes["layer1"].shape[2] // len(modalities)
    for index, modality in enumerate(modalities):
        expected = node_major_spikes(
            out.spikes["layer1"][:, :, index * width : (index + 1) * width]
        )
        got = torch.from_numpy(result.recorded[f"layer1.{modality}.lif"])
        assert torch.equal(got, expected), modality
    for layer in ("layer2", "layer3", "layer4"):
        expected = node_major_spikes(out.spikes[layer])
        assert expected.sum() > 0, f"{layer} is silent: the test would prove little"
        assert torch.equal(torch.from_numpy(result.recorded[f"{layer}.lif"]), expected), layer
    logits = result.recorded["output"].mean(axis=1)
    np.testing.assert_allclose(logits, out.logits.numpy(), rtol=0, atol=1e-5)


def test_lowering_follows_the_contract() -> None:
    model = spiking_student("mk-sgn")
    graph = student_to_nir(model)
    nodes = 50
    assert graph.metadata == {
        "mksgn_version": graph.metadata["mksgn_version"],
        "dt": 1e-4,
        "model": "mk-sgn",
        "time_steps": STEPS,
        "modalities": ["joint", "bone", "joint_motion", "bone_motion"],
        "frames": FRAMES,
        "nodes": nodes,
        "num_classes": CLASSES,
        "factorised_flops_per_step": graph.metadata["factorised_flops_per_step"],
        "layout": NTU_25.to_json(),  # the skeleton simulate --data encodes for
    }
    assert tuple(graph.nodes["input"].input_type["input"]) == (nodes * 12, FRAMES)
    fusion = [graph.nodes[f"layer2.synapse.{m}"] for m in graph.metadata["modalities"]]
    assert [conv.groups for conv in fusion] == [nodes] * 4
    assert fusion[0].bias.any() and not any(conv.bias.any() for conv in fusion[1:])
    assert fusion[0].weight.shape == (nodes * 6, 4, 3)
    assert {(f"layer2.synapse.{m}", "layer2.lif") for m in graph.metadata["modalities"]} <= set(
        graph.edges
    )
    # The bone branch's graph conv reads only the bone columns (3..5) of each node.
    bone = graph.nodes["layer1.bone.synapse"].weight[:, :, 0].reshape(nodes * 4, nodes, 12)
    assert not bone[:, :, :3].any() and not bone[:, :, 6:].any() and bone[:, :, 3:6].any()
    lif = graph.nodes["layer4.lif"]
    assert lif.tau.shape == (nodes * 8, FRAMES // 2)
    beta = float(model.hidden[2].neurons.neuron.beta)
    np.testing.assert_allclose(1 - 1e-4 / lif.tau, beta, rtol=0, atol=1e-12)
    np.testing.assert_allclose(lif.r, lif.tau / 1e-4)
    assert not lif.v_reset.any() and not lif.v_leak.any()
    assert graph.nodes["readout.affine"].weight.shape == (CLASSES, nodes * 8 * FRAMES // 2)


def test_factorised_flops_count_channel_mixing_and_graph_non_zeros() -> None:
    model = spiking_student("mk-sgn")  # channels 4, 6, 8, 8 (stride 2), kernel 3, 50 nodes
    flops = student_to_nir(model).metadata["factorised_flops_per_step"]
    nodes = 50
    plain = int(np.count_nonzero(model.coding.branches["joint"].synapse.adjacency))
    attended = int(np.count_nonzero(model.hidden[1].synapse.effective_adjacency().detach()))
    assert flops["layer1.joint.synapse"] == 3 * 4 * 3 * FRAMES * nodes + plain * 4 * FRAMES
    assert flops["layer2.synapse.bone"] == FRAMES * nodes * 6 * 4 * 3  # one modality's 4 inputs
    assert flops["layer3.synapse"] == 3 * 8 * 6 * FRAMES * nodes + attended * 8 * FRAMES
    assert flops["layer4.synapse"] == (FRAMES // 2) * nodes * 8 * 8 * 3
    assert flops["readout.affine"] == 8 * (FRAMES // 2) * nodes + 8 * CLASSES
    # A k-hop attention support keeps the aggregation far below a dense V x V map.
    assert attended < 3 * nodes * nodes / 4


def test_beta_one_becomes_if() -> None:
    graph = student_to_nir(spiking_student("base-sgn", beta=1.0))
    assert isinstance(graph.nodes["layer1.joint.lif"], nir.IF)


def test_nir_read_gives_back_the_same_graph(tmp_path: Path) -> None:
    graph = student_to_nir(spiking_student("mk-sgn"))
    path = write_nir(graph, tmp_path / "model.nir")
    again = nir.read(path, type_check=False)
    check_same_graph(graph, again, path)
    assert sorted(again.edges) == sorted(graph.edges)
    np.testing.assert_array_equal(
        again.nodes["layer3.synapse"].weight, graph.nodes["layer3.synapse"].weight
    )
    mutated = nir.read(path, type_check=False)
    mutated.nodes["layer3.lif"].v_threshold = mutated.nodes["layer3.lif"].v_threshold + 1
    with pytest.raises(MksgnError, match=r"layer3\.lif"):
        check_same_graph(graph, mutated, path)


def test_subtractive_reset_is_refused_naming_the_layer() -> None:
    model = spiking_student("base-sgn")
    model.hidden[1].neurons.neuron.reset_mechanism = "subtract"
    with pytest.raises(MksgnError, match=r"hidden\.1.*subtract"):
        student_to_nir(model)


def test_a_layer_without_nir_lowering_is_refused_naming_it() -> None:
    model = spiking_student("base-sgn")
    model.hidden[0].synapse = torch.nn.Identity()
    with pytest.raises(MksgnError, match=r"'hidden\.0\.synapse' is a Identity"):
        student_to_nir(model)
    with pytest.raises(MksgnError, match="not a spiking student"):
        student_to_nir(build_model(tiny_config("gcn", CLASSES, STEPS, FRAMES)))


def test_teacher_exports_to_onnx_matching_pytorch(tmp_path: Path) -> None:
    import onnx
    import onnxruntime

    torch.manual_seed(0)
    teacher = build_model(tiny_config("gcn", CLASSES, STEPS, FRAMES))
    randomize_inference_state(teacher)
    report = teacher_to_onnx(teacher.eval(), tmp_path / "teacher.onnx", frames=FRAMES)
    assert report["max_abs_diff"] <= 1e-4
    onnx.checker.check_model(onnx.load(str(tmp_path / "teacher.onnx")))
    session = onnxruntime.InferenceSession(str(tmp_path / "teacher.onnx"))
    x = joints(batch=5, seed=3)
    (logits,) = session.run(None, {"joints": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(logits, teacher(x).logits.numpy(), rtol=0, atol=1e-4)
    with pytest.raises(MksgnError, match="not the GCN teacher"):
        teacher_to_onnx(spiking_student("base-sgn"), tmp_path / "s.onnx", frames=FRAMES)
    assert not (tmp_path / "s.onnx").exists()


def test_export_command_writes_nir_and_onnx(tmp_path: Path, capsys) -> None:
    checkpoint = save_model(spiking_student("mk-sgn"), tmp_path / "mk.pt")
    assert run(["export", str(checkpoint), "--nir", str(tmp_path / "mk.nir"), "--json"]) == 0
    assert '"format": "nir"' in capsys.readouterr().out
    assert isinstance(read_nir(tmp_path / "mk.nir").nodes["layer2.lif"], nir.LIF)
    torch.manual_seed(0)
    teacher = save_model(
        build_model(tiny_config("gcn", CLASSES, STEPS, FRAMES)).eval(), tmp_path / "gcn.pt"
    )
    assert run(["export", str(teacher), "--onnx", str(tmp_path / "gcn.onnx")]) == 0
    assert (tmp_path / "gcn.onnx").stat().st_size > 0
    capsys.readouterr()
    assert run(["export", str(teacher), "--nir", str(tmp_path / "gcn.nir")]) == 1
    assert "does not spike" in capsys.readouterr().err
    assert run(["export", str(checkpoint), "--onnx", str(tmp_path / "mk.onnx")]) == 1
    assert "--nir" in capsys.readouterr().err
    assert not (tmp_path / "gcn.nir").exists() and not (tmp_path / "mk.onnx").exists()
    assert run(["export", str(checkpoint)]) == 2


@pytest.mark.parametrize("damage", ["truncated", "garbage", "no-input"])
def test_unreadable_nir_is_an_error_naming_the_file(damage: str, tmp_path: Path, capsys) -> None:
    good = write_nir(student_to_nir(spiking_student("base-sgn")), tmp_path / "good.nir")
    bad = tmp_path / "bad.nir"
    if damage == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif damage == "garbage":
        bad.write_bytes(b"this is not HDF5\n" * 10)
    else:
        bad.write_bytes(good.read_bytes())
        with h5py.File(bad, "a") as handle:
            del handle["node/nodes/input"]
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((STEPS, 150, FRAMES), dtype=np.float32))
    code = run(["simulate", str(bad), "--input", str(x), "--backend", "snntorch"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("Error: ") and str(bad) in err and "Traceback" not in err


def test_unknown_node_is_refused_naming_it() -> None:
    class Mystery(nir.NIRNode):
        def __init__(self) -> None:
            self.input_type = {"input": np.array([2])}
            self.output_type = {"output": np.array([2])}

    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(np.array([2])),
            "odd": Mystery(),
            "output": nir.Output(np.array([2])),
        },
        edges=[("input", "odd"), ("odd", "output")],
        type_check=False,
    )
    with pytest.raises(MksgnError, match=r"'odd' \(Mystery\).*unsupported"):
        validate_graph(graph)
    with pytest.raises(MksgnError, match="'odd'"):
        ReferenceTarget().run(graph, np.zeros((1, 2, 2)))
