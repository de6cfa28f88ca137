"""`mksgn energy`: presets, the --json schema, hand-checked counts with --input, a checkpoint as
MODEL, the teacher's reduction, and the errors of bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from cli_runner import run
from model_fixtures import save_model, tiny_config

from mksgn.benchmarks.prices import PRESETS, resolve_preset
from mksgn.cli import cli
from mksgn.errors import MksgnError
from mksgn.train.models import build_model
from mksgn.train.models.cost import dense_macs_per_sample

FP32_AC, FP32_MAC = 0.9, 4.6
# The hand-made graph below on x = [1, 0, 2] for 2 steps: fc1 (direct coding) does 2 MACs once;
# IF neurons (thresholds 0.5, 3) spike [1, 0] then [1, 1]; fc2's fan-outs are 2 and 1, so
# 2 + (2 + 1) = 5 ACs; 2 neurons × 2 steps = 4 updates.
HAND_ACS, HAND_MACS, HAND_UPDATES = 5.0, 2.0, 4.0


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The hand-made graph, its input, a student checkpoint and a teacher (checkpoint, ONNX)."""
    from mksgn.convert.onnx_export import teacher_to_onnx

    folder = tmp_path_factory.mktemp("energy")
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([3])),
            "fc1": nir.Linear(weight=np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])),
            "if1": nir.IF(r=np.ones(2), v_threshold=np.array([0.5, 3.0]), v_reset=np.zeros(2)),
            "fc2": nir.Affine(weight=np.array([[1.0, 0.0], [1.0, 1.0]]), bias=np.ones(2)),
            "output": nir.Output(output_type=np.array([2])),
        },
        edges=[("input", "fc1"), ("fc1", "if1"), ("if1", "fc2"), ("fc2", "output")],
        type_check=False,
    )
    nir.write(folder / "hand.nir", graph)
    np.save(folder / "x.npy", np.array([[1.0, 0.0, 2.0]] * 2, dtype=np.float32))
    student_config = tiny_config("mk-sgn", 3, time_steps=2, frames=8, threshold=0.2)
    torch.manual_seed(0)
    student = build_model(student_config).eval()
    teacher_config = tiny_config("gcn", 3, frames=8)
    teacher = build_model(teacher_config).eval()
    teacher_to_onnx(teacher, folder / "gcn.onnx", frames=8)
    sample = np.random.default_rng(0).normal(size=(2, 1, 50 * 12, 8)).astype(np.float32)
    np.save(folder / "student_x.npy", np.repeat(sample, 2, axis=1))  # direct coding: T = 2
    return {
        "graph": folder / "hand.nir",
        "x": folder / "x.npy",
        "student": save_model(student, folder / "mk.pt", student_config),
        "student_x": folder / "student_x.npy",
        "teacher": save_model(teacher, folder / "gcn.pt", teacher_config),
        "onnx": folder / "gcn.onnx",
        "teacher_macs": dense_macs_per_sample(teacher, teacher_config),
    }


def energy_json(args: list[str], capsys: pytest.CaptureFixture) -> dict:
    """Run `mksgn energy ... --json` and parse its one JSON object."""
    capsys.readouterr()
    assert run(["energy", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_presets_and_overrides() -> None:
    assert PRESETS["45nm-fp32"].pj_per_ac == FP32_AC and PRESETS["45nm-fp32"].pj_per_mac == 4.6
    assert (PRESETS["45nm-int8"].pj_per_ac, PRESETS["45nm-int8"].pj_per_mac) == (0.03, 0.2)
    loihi = PRESETS["loihi"]
    assert (loihi.pj_per_ac, loihi.pj_per_mac, loihi.pj_per_update) == (23.6, 23.6, 81.0)
    assert resolve_preset("loihi").name == "loihi"
    custom = resolve_preset("loihi", update_pj=52.0)
    assert (custom.name, custom.pj_per_ac, custom.pj_per_update) == ("custom", 23.6, 52.0)
    assert resolve_preset("45nm-fp32", ac_pj=0.9).name == "45nm-fp32"  # same value: not custom
    assert PRESETS["45nm-fp32"].energy_mj(1e9, 0, 0) == pytest.approx(0.9)
    with pytest.raises(MksgnError, match="--mac-pj"):
        resolve_preset("45nm-fp32", mac_pj=-1.0)
    with pytest.raises(MksgnError, match="unknown energy preset"):
        resolve_preset("22nm")
    choices = next(p for p in cli.commands["energy"].params if p.name == "preset").type.choices
    assert list(choices) == list(PRESETS)


def test_json_schema_and_hand_counts(files, capsys) -> None:
    report = energy_json([str(files["graph"]), "--input", str(files["x"])], capsys)
    assert list(report) == [
        "preset",
        "pj_per_ac",
        "pj_per_mac",
        "pj_per_update",
        "time_steps",
        "samples",
        "backend",
        "per_sample",
        "paper_style",
        "published",
        "layers",
        "teacher",
        "reduction_percent",
        "simulated",
        "warnings",
    ]
    assert report["preset"] == "45nm-fp32" and report["backend"] == "snntorch"
    assert (report["pj_per_ac"], report["pj_per_mac"], report["pj_per_update"]) == (0.9, 4.6, 0.0)
    assert (report["time_steps"], report["samples"]) == (2, 1)
    assert report["teacher"] is None and report["reduction_percent"] is None
    per_sample = report["per_sample"]
    assert set(per_sample) == {"acs", "macs", "neuron_updates", "energy_mj"}
    assert all(isinstance(value, float) for value in per_sample.values())
    assert (per_sample["acs"], per_sample["macs"]) == (HAND_ACS, HAND_MACS)
    assert per_sample["neuron_updates"] == HAND_UPDATES
    assert per_sample["energy_mj"] == pytest.approx((5 * FP32_AC + 2 * FP32_MAC) * 1e-9)
    schema = {
        "name": str,
        "acs": float,
        "macs": float,
        "neuron_updates": float,
        "input_rate": float,
        "dense_ops": float,
        "energy_mj": float,
    }
    for layer in report["layers"]:
        for key, kind in schema.items():
            assert isinstance(layer[key], kind), (layer["name"], key)
    fc1, fc2 = report["layers"]
    assert (fc1["name"], fc1["macs"], fc1["direct_coded"], fc1["dense_ops"]) == ("fc1", 2, True, 6)
    assert (fc2["name"], fc2["acs"], fc2["dense_ops"], fc2["input_rate"]) == ("fc2", 5, 8, 0.75)
    assert fc2["paper_sop"] == pytest.approx(0.75 * 2 * 4)
    # A hand-made graph has no factorised FLOPs: the paper-style count uses the deployed layer,
    # the MAC layer once (direct coding).
    paper = report["paper_style"]
    assert paper["flops_convention"] == "deployed dense"
    assert (paper["sop"], paper["mac_flops"]) == (pytest.approx(6.0), 6.0)
    assert paper["energy_mj"] == pytest.approx((6 * FP32_AC + 6 * FP32_MAC) * 1e-9)
    assert fc1["energy_mj"] + fc2["energy_mj"] == pytest.approx(per_sample["energy_mj"])
    simulated = report["simulated"]
    assert simulated["backend"] == "snntorch" and simulated["steps_per_sample"] == 2
    assert isinstance(simulated["wall_s_per_sample"], float)


def test_loihi_prices_updates_and_table(files, capsys) -> None:
    args = [str(files["graph"]), "--input", str(files["x"]), "--preset", "loihi"]
    report = energy_json(args, capsys)
    expected = (HAND_ACS * 23.6 + HAND_MACS * 23.6 + HAND_UPDATES * 81.0) * 1e-9
    assert report["per_sample"]["energy_mj"] == pytest.approx(expected)
    assert run(["energy", *args, "--update-pj", "0"]) == 0
    table = capsys.readouterr().out
    assert "preset custom (23.6 pJ/AC, 23.6 pJ/MAC, 0 pJ/neuron update)" in table
    assert "fc1" in table and "mac*" in table and "counted once per sample" in table


def test_teacher_reduction_from_onnx_and_checkpoint(files, capsys) -> None:
    base = [str(files["graph"]), "--input", str(files["x"])]
    from_onnx = energy_json([*base, "--teacher", str(files["onnx"])], capsys)
    from_checkpoint = energy_json([*base, "--teacher", str(files["teacher"])], capsys)
    macs = float(files["teacher_macs"])
    assert from_onnx["teacher"] == from_checkpoint["teacher"]
    assert from_onnx["teacher"]["macs"] == macs
    assert from_onnx["teacher"]["energy_mj"] == pytest.approx(macs * FP32_MAC * 1e-9)
    student = (5 * FP32_AC + 2 * FP32_MAC) / (macs * FP32_MAC)
    assert from_onnx["reduction_percent"] == pytest.approx(100 * (1 - student))


def test_teacher_of_another_task_is_refused(files, tmp_path, capsys) -> None:
    # The student predicts 3 classes; a 5-class teacher (checkpoint or ONNX) is another task.
    from mksgn.convert.onnx_export import teacher_to_onnx

    config = tiny_config("gcn", 5, frames=8)
    other = build_model(config).eval()
    teacher_to_onnx(other, tmp_path / "other.onnx", frames=8)
    for teacher in (save_model(other, tmp_path / "other.pt", config), tmp_path / "other.onnx"):
        args = ["energy", str(files["student"]), "--input", str(files["student_x"])]
        assert run([*args, "--samples", "1", "--teacher", str(teacher)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("Error: --teacher") and "5 classes" in err and "for 3" in err


def test_loihi_prices_the_teacher_as_an_ann_accelerator(files, capsys) -> None:
    base = [str(files["graph"]), "--input", str(files["x"]), "--teacher", str(files["onnx"])]
    report = energy_json([*base, "--preset", "loihi"], capsys)
    macs = float(files["teacher_macs"])
    assert report["teacher"]["pj_per_mac"] == FP32_MAC
    assert report["teacher"]["energy_mj"] == pytest.approx(macs * FP32_MAC * 1e-9)
    assert "FP32" in report["teacher"]["hardware"]


def test_checkpoint_model_equals_its_nir_export(files, tmp_path, capsys) -> None:
    assert run(["export", str(files["student"]), "--nir", str(tmp_path / "mk.nir")]) == 0
    args = ["--input", str(files["student_x"]), "--samples", "1"]
    from_checkpoint = energy_json([str(files["student"]), *args], capsys)
    from_nir = energy_json([str(tmp_path / "mk.nir"), *args], capsys)
    assert from_checkpoint["samples"] == 1
    assert from_checkpoint["per_sample"] == from_nir["per_sample"]
    assert from_checkpoint["per_sample"]["acs"] > 0
    names = [layer["name"] for layer in from_checkpoint["layers"]]
    assert {f"layer2.synapse.{m}" for m in ("joint", "bone", "joint_motion", "bone_motion")} <= set(
        names
    )
    coding = [layer for layer in from_checkpoint["layers"] if layer["name"].startswith("layer1.")]
    assert len(coding) == 4 and all(layer["direct_coded"] for layer in coding)
    # mksgn's export stores the factorised FLOPs: the paper-style count uses them.
    assert from_nir["paper_style"]["flops_convention"] == "factorised"
    assert all(layer["factorised_flops_per_step"] for layer in from_nir["layers"])


def test_unknown_preset_exits_2(files, capsys) -> None:
    code = run(["energy", str(files["graph"]), "--input", str(files["x"]), "--preset", "tpu"])
    assert code == 2
    assert "Invalid value for '--preset'" in capsys.readouterr().err


def test_data_and_input_together_exit_2(files, capsys) -> None:
    code = run(
        ["energy", str(files["graph"]), "--input", str(files["x"]), "--data", str(files["x"])]
    )
    assert code == 2
    assert "exactly one of --data" in capsys.readouterr().err


def test_wrong_input_shape_is_an_error_naming_the_file(files, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 4), dtype=np.float32))
    assert run(["energy", str(files["graph"]), "--input", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and str(bad) in err and "(2, 4)" in err


def test_wrong_models_are_errors(files, tmp_path, capsys) -> None:
    base = ["--input", str(files["x"])]
    assert run(["energy", str(files["graph"]), *base, "--teacher", str(files["student"])]) == 1
    assert "not the GCN teacher" in capsys.readouterr().err
    assert run(["energy", str(files["teacher"]), *base]) == 1
    assert "GCN teacher, which does not spike" in capsys.readouterr().err
    text = tmp_path / "notes.txt"
    shutil.copy(files["x"], text)
    assert run(["energy", str(files["graph"]), *base, "--teacher", str(text)]) == 1
    assert str(text) in capsys.readouterr().err
