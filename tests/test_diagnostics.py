"""Silent layers and outputs that ignore the input are flagged wherever results are printed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import run
from model_fixtures import tiny_config

from mksgn.convert.nir_export import student_to_nir, write_nir
from mksgn.diagnostics import output_warnings, silent_layer_warnings
from mksgn.train.checkpoint import save_checkpoint
from mksgn.train.data import synthetic
from mksgn.train.models import build_model
from mksgn.train.models.layers import SpikingLayer

FRAMES = 8


def test_silent_layers_are_named() -> None:
    warnings = silent_layer_warnings({"layer1": 0.12, "layer2": 0.0, "layer3": None})
    assert len(warnings) == 1 and warnings[0].startswith("layer2 is silent")


def test_identical_outputs_and_constant_predictions() -> None:
    same = np.tile(np.array([0.1, 0.5, 0.2]), (2, 1))
    assert "exactly the same output" in output_warnings(same, np.array([1, 1]))[0]
    varied = same + np.array([[0.0], [0.01]])
    assert output_warnings(varied, np.array([1, 1])) == []  # two samples may share a class
    assert "predicted as class 4" in output_warnings(None, np.full(12, 4))[0]
    assert output_warnings(None, np.arange(12) % 3) == []


@pytest.fixture(scope="module")
def silent_student(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A Base-SGN whose hidden layers cannot reach their threshold, a dataset for it, and its
    NIR export: the readout then sees zeros and outputs its bias for every sample."""
    root = tmp_path_factory.mktemp("silent")
    data = root / "synth.npz"
    synthetic.write_npz(synthetic.generate(3, 6, FRAMES, seed=0), data)
    config = tiny_config("base-sgn", 3, time_steps=2, frames=FRAMES)
    torch.manual_seed(0)
    model = build_model(config).eval()
    for layer in [m for m in model.modules() if isinstance(m, SpikingLayer)][1:]:
        layer.neuron.threshold.data.fill_(1e6)
    checkpoint = root / "silent.pt"
    save_checkpoint(
        checkpoint,
        config=config,
        model_state=model.state_dict(),
        optimizer_state=None,
        scheduler_state=None,
        epoch=1,
        metrics={},
        rng_state={},
    )
    nir_file = write_nir(student_to_nir(model), root / "silent.nir")
    return {"data": data, "checkpoint": checkpoint, "nir": nir_file}


def test_evaluate_flags_a_silent_network(silent_student, capsys) -> None:
    files = silent_student
    assert run(["evaluate", str(files["checkpoint"]), "--data", str(files["data"]), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert any(w.startswith("layer2 is silent") for w in result["warnings"])
    assert "Warning: layer2 is silent" in captured.err


def test_simulate_flags_identical_outputs(silent_student, capsys) -> None:
    files = silent_student
    args = ["simulate", str(files["nir"]), "--data", str(files["data"]), "--samples", "2"]
    assert run([*args, "--backend", "snntorch", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert any("exactly the same output" in w for w in result["warnings"])
    assert "Warning: all 2 samples give exactly the same output" in captured.err


def test_energy_flags_silent_layers(silent_student, capsys) -> None:
    files = silent_student
    args = ["energy", str(files["nir"]), "--data", str(files["data"]), "--samples", "2", "--json"]
    assert run(args) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["warnings"] and all("is silent" in w for w in report["warnings"])
    assert "Warning:" in captured.err
