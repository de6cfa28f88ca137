"""The demo pipeline end to end on a very small size, and `mksgn report` on its folder (one demo
run shared by every test here: it is the suite's most expensive fixture; the README's --quick and
full sizes are measured by running them, not here)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run

from mksgn.benchmarks.demo import DemoSize, run_demo
from mksgn.benchmarks.report_markdown import PLOTS
from mksgn.processes import processes_where

SMALLEST = DemoSize(
    classes=3,
    samples_per_class=6,
    frames=16,
    model_frames=8,
    teacher_epochs=1,
    student_epochs=1,
    lava_samples=1,
)
REPORT_FILES = {"report.json", "report.md", *PLOTS.values()}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Loaded CI machines run Lava slowly (three Lava runs of one sample here).
DEMO_TIMEOUT = 600


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list[str], set[int]]:
    """One finished demo folder, its summary and its echoed lines."""
    out = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    # Children from earlier tests (a multiprocessing forkserver lives as long as pytest) are not
    # the demo's; whatever the demo started must be gone when it returns.
    earlier = set(processes_where("ppid", os.getpid()))
    summary = run_demo(out, SMALLEST, lines.append)
    return out, summary, lines, earlier


def copy_of_run(demo_dir: Path, target: Path) -> Path:
    """The demo folder's report inputs, copied so a test may break them."""
    shutil.copytree(demo_dir, target, ignore=shutil.ignore_patterns("lava", "report"))
    return target


@pytest.mark.timeout(DEMO_TIMEOUT)
def test_demo_runs_every_stage_and_lava_matches_the_reference(demo) -> None:
    out, summary, lines, earlier = demo
    assert [line[:6] for line in lines[:10]] == [f"[{i}/10]" for i in range(1, 10)] + ["[10/10"]
    for name in ("synthetic.npz", "gcn.onnx", "mk-sgn.nir", "summary.json"):
        assert (out / name).is_file()
    for model in ("gcn", "base-sgn", "mk-sgn"):
        assert (out / model / "checkpoint.pt").is_file()
        assert 0 <= summary["accuracy"][model] <= 1
    assert (out / "lava" / "manifest.json").is_file()
    assert (out / "lava-fixed" / "fixed_point.npz").is_file()
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    # Lava float and the snnTorch reference agree spike for spike, so do their energy counts.
    assert summary["parity_identical"] is True
    assert set(summary["parity_per_layer"]) >= {"layer2.lif", "layer6.lif"}
    energy = summary["energy"]
    assert set(energy) == {"snntorch", "lava-float", "lava-fixed"}
    assert energy["snntorch"]["per_sample"]["acs"] == energy["lava-float"]["per_sample"]["acs"]
    assert energy["snntorch"]["per_sample"]["acs"] > 0
    teacher = summary["teacher_energy_mj_per_sample"]
    assert 0 < summary["energy_mj_per_sample"]["snntorch"] < teacher
    assert summary["reduction_percent"]["snntorch"] == pytest.approx(
        100 * (1 - summary["energy_mj_per_sample"]["snntorch"] / teacher)
    )
    assert any("identical" in line for line in lines)
    assert set(processes_where("ppid", os.getpid())) <= earlier


@pytest.mark.timeout(DEMO_TIMEOUT)
def test_demo_runs_lava_fixed_and_keeps_every_backends_spikes(demo) -> None:
    out, summary, lines, _ = demo
    saved = {}
    for backend in ("snntorch", "lava-float", "lava-fixed"):
        with np.load(out / f"spikes-{backend}.npz") as archive:
            saved[backend] = {name: archive[name] for name in archive.files}
        assert saved[backend]["layer2.lif"].shape[:2] == (SMALLEST.lava_samples, 4)
        predictions = summary["backends"][backend]["predictions"]
        assert saved[backend]["predictions"].tolist() == predictions
        assert summary["backends"][backend]["accuracy"] == pytest.approx(
            np.mean(np.array(predictions) == np.array(summary["lava_labels"]))
        )
    fixed = summary["fixed_point"]
    for node, value in fixed["agreement_per_layer"].items():
        expected = np.mean(saved["lava-fixed"][node] == saved["lava-float"][node])
        assert value == pytest.approx(expected)
    assert 0.9 <= fixed["mean_agreement"] <= 1.0  # Loihi arithmetic: close to float, not equal
    assert fixed["quantisation"]  # per-layer weight exponents and errors
    assert summary["energy"]["lava-fixed"]["backend"] == "lava-fixed"
    assert set(summary["stage_seconds"]) >= {"base-sgn", "lava-fixed", "report"}
    table = "\n".join(lines[10:])
    assert "Base-SGN" in table and "lava-fixed" in table and "energy reduction" in table


@pytest.mark.timeout(DEMO_TIMEOUT)
def test_teacher_macs_per_layer_add_up_to_the_teacher(demo) -> None:
    from mksgn.benchmarks.teacher_macs import onnx_macs_per_layer, teacher_macs

    out, summary, _, _ = demo
    layers = onnx_macs_per_layer(out / "gcn.onnx")
    assert list(layers)[-1] == "readout" and "blocks.0" in layers
    assert sum(layers.values()) == teacher_macs(out / "gcn" / "checkpoint.pt")
    assert summary["teacher_macs_per_layer"] == layers


@pytest.mark.timeout(DEMO_TIMEOUT)
def test_demo_writes_the_report_and_the_cli_rewrites_it(demo, tmp_path: Path) -> None:
    import matplotlib.image

    out, summary, _, _ = demo
    assert {p.name for p in (out / "report").iterdir()} == REPORT_FILES
    target = tmp_path / "elsewhere"
    assert run(["report", str(out), "--out", str(target)]) == 0
    assert {p.name for p in target.iterdir()} == REPORT_FILES
    for name in PLOTS.values():
        assert (target / name).read_bytes()[:8] == PNG_SIGNATURE
        image = matplotlib.image.imread(target / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100

    report = json.loads((target / "report.json").read_text())
    assert set(report) == {
        "run_dir",
        "created",
        "models",
        "simulation",
        "parity",
        "fixed_point",
        "energy",
        "loihi2",
        "timings",
        "files",
        "absent",
        "warnings",
    }
    assert report["absent"] == []
    assert list(report["models"]) == ["gcn", "base-sgn", "mk-sgn"]
    for model, section in report["models"].items():
        assert section["top1"] == summary["accuracy"][model]
        assert section["epochs"] == len(section["history"]) == 1
        assert set(section["history"][0]) >= {"epoch", "train_loss", "train_acc", "test_acc"}
    assert report["parity"] == {
        "identical": True,
        "per_layer": summary["parity_per_layer"],
    }
    assert report["fixed_point"]["mean_agreement"] == summary["fixed_point"]["mean_agreement"]
    energy = report["energy"]
    for backend in ("snntorch", "lava-float", "lava-fixed"):
        row = energy["backends"][backend]
        assert row["per_sample"] == summary["energy"][backend]["per_sample"]
        assert row["reduction_percent"] == summary["reduction_percent"][backend]
        assert sum(layer["energy_mj"] for layer in row["layers"]) == pytest.approx(
            row["per_sample"]["energy_mj"]
        )
    assert sum(layer["energy_mj"] for layer in energy["teacher"]["layers"]) == pytest.approx(
        summary["teacher_energy_mj_per_sample"]
    )
    rates = report["simulation"]["firing_rates"]
    assert rates["snntorch"] == rates["lava-float"]  # parity holds, so the rates agree
    assert "layer2.lif" in report["simulation"]["spiking_layers"]
    assert report["timings"]["stages_s"]["mk-sgn"] > 0

    markdown = (target / "report.md").read_text()
    for heading in (
        "Accuracy per model",
        "Spike parity per layer",
        "Fixed-point agreement",
        "Energy per layer",
        "Per-sample totals",
        "Loihi 2 resources",
        "Timings",
    ):
        assert f"## {heading}" in markdown
    # The stored resource report of lava-fixed/ (docs/loihi2-resources.md): counts add up.
    loihi2 = report["loihi2"]
    assert loihi2["folder"] == "lava-fixed" and loihi2["cores"] >= len(loihi2["layers"])
    assert loihi2["synapses"] == sum(layer["synapses"] for layer in loihi2["layers"]) > 0
    assert "| Base-SGN |" in markdown and "| lava-fixed |" in markdown
    assert all(f"]({name})" in markdown for name in PLOTS.values())


@pytest.mark.timeout(DEMO_TIMEOUT)
def test_report_names_missing_pieces_and_leaves_nothing(demo, tmp_path: Path, capsys) -> None:
    broken = copy_of_run(demo[0], tmp_path / "run")
    (broken / "spikes-lava-float.npz").unlink()
    (broken / "base-sgn" / "metrics.jsonl").unlink()
    capsys.readouterr()
    assert run(["report", str(broken)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("Error:") and error.count("\n") == 1
    assert "spikes-lava-float.npz" in error and "base-sgn/metrics.jsonl" in error
    assert not (broken / "report").exists()
    assert not [p for p in broken.iterdir() if p.name.startswith(".report")]

    # Without summary.json it is a hand-made run folder: the report shows what its files hold.
    (broken / "summary.json").unlink()
    assert run(["report", str(broken)]) == 0
    markdown = (broken / "report" / "report.md").read_text()
    assert "## Training" in markdown and "## Accuracy per backend" in markdown


@pytest.mark.timeout(DEMO_TIMEOUT)
def test_report_without_the_fixed_point_run_says_it_is_absent(demo, tmp_path: Path) -> None:
    partial = copy_of_run(demo[0], tmp_path / "run")
    (partial / "spikes-lava-fixed.npz").unlink()
    assert run(["report", str(partial)]) == 0
    report = json.loads((partial / "report" / "report.json").read_text())
    assert report["fixed_point"] is None
    assert any("fixed-point" in piece for piece in report["absent"])
    assert "fixed-point run is absent" in (partial / "report" / "report.md").read_text()


@pytest.mark.timeout(DEMO_TIMEOUT)
def test_a_failing_report_keeps_the_previous_one(
    demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import mksgn.benchmarks.report as report_module

    run_dir = copy_of_run(demo[0], tmp_path / "run")
    assert run(["report", str(run_dir)]) == 0
    before = {p.name: p.read_bytes() for p in (run_dir / "report").iterdir()}

    def broken_raster(*_args: object) -> None:
        raise report_module.MksgnError("raster failed")

    monkeypatch.setattr(report_module, "plot_raster", broken_raster)
    assert run(["report", str(run_dir)]) == 1
    assert "raster failed" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in (run_dir / "report").iterdir()} == before
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".")) == []


@pytest.mark.timeout(DEMO_TIMEOUT)
def test_report_refuses_to_replace_what_is_not_a_report(demo, tmp_path: Path, capsys) -> None:
    run_dir = copy_of_run(demo[0], tmp_path / "run")
    capsys.readouterr()
    assert run(["report", str(run_dir), "--out", str(run_dir)]) == 1
    assert "would replace the run directory" in capsys.readouterr().err
    assert run(["report", str(run_dir), "--out", str(tmp_path)]) == 1
    assert (run_dir / "summary.json").is_file()
    keep = tmp_path / "notes"
    keep.mkdir()
    (keep / "mine.txt").write_text("keep me")
    assert run(["report", str(run_dir), "--out", str(keep)]) == 1
    assert "holds no earlier report" in capsys.readouterr().err
    assert (keep / "mine.txt").read_text() == "keep me"


def test_agreement_counts_spikes_exactly_and_the_readout_within_float32_rounding() -> None:
    from mksgn.benchmarks.demo import agreement

    spikes = np.array([[0.0, 1.0, 1.0, 0.0]])
    readout = np.array([[3.691899, -0.25, 0.0, 1.5]])
    reference = {"lif": spikes.astype(np.float32), "output": readout.astype(np.float32)}
    lava = {"lif": np.array([[0.0, 1.0, 0.0, 0.0]]), "output": readout.astype(np.float64)}
    assert agreement(reference, lava) == {"lif": 0.75, "output": 1.0}
    lava["output"] = readout + np.array([[0.0, 0.01, 0.0, 0.0]])
    assert agreement(reference, lava)["output"] == 0.75
