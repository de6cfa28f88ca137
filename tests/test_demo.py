"""The demo pipeline end to end on a very small size (the README's --quick and full sizes are
measured by running them, not here)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mksgn.benchmarks.demo import DemoSize, run_demo
from mksgn.targets.lava import processes_where

SMALLEST = DemoSize(
    classes=3,
    samples_per_class=6,
    frames=16,
    model_frames=8,
    teacher_epochs=1,
    student_epochs=1,
    lava_samples=1,
)


@pytest.mark.timeout(240)
def test_demo_runs_every_stage_and_lava_matches_the_reference(tmp_path: Path) -> None:
    lines: list[str] = []
    summary = run_demo(tmp_path, SMALLEST, lines.append)
    assert [line[:5] for line in lines[:7]] == [f"[{i}/7]" for i in range(1, 8)]
    for name in ("synthetic.npz", "gcn.onnx", "mk-sgn.nir", "summary.json"):
        assert (tmp_path / name).is_file()
    assert (tmp_path / "gcn" / "checkpoint.pt").is_file()
    assert (tmp_path / "mk-sgn" / "checkpoint.pt").is_file()
    assert (tmp_path / "lava" / "manifest.json").is_file()
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(summary))
    # Lava float and the snnTorch reference agree spike for spike, so do their energy counts.
    assert summary["parity_identical"] is True
    assert set(summary["parity_per_layer"]) >= {"layer2.lif", "layer6.lif"}
    energy = summary["energy"]
    assert energy["snntorch"]["per_sample"]["acs"] == energy["lava-float"]["per_sample"]["acs"]
    assert energy["snntorch"]["per_sample"]["acs"] > 0
    teacher = summary["teacher_energy_mj_per_sample"]
    assert 0 < summary["energy_mj_per_sample"]["snntorch"] < teacher
    assert summary["reduction_percent"]["snntorch"] == pytest.approx(
        100 * (1 - summary["energy_mj_per_sample"]["snntorch"] / teacher)
    )
    assert any("identical" in line for line in lines)
    assert processes_where("ppid", os.getpid()) == []
