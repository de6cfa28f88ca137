"""`mksgn report DIR` on a run made by hand, as the README's step-by-step pipeline makes one:
the sections its files support, and what was left out and why (issue 17)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nir
import numpy as np
import pytest
from cli_runner import run
from test_convert_cli import chain_graph


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a training run, two backends' simulate --out files of one graph, an energy
    report and a converted folder, all made by the CLI."""
    folder = tmp_path_factory.mktemp("run")
    data = folder / "synth.npz"
    args = ["data", "synth", "--out", str(data), "--classes", "2", "--samples-per-class", "4"]
    assert run([*args, "--frames", "8"]) == 0
    assert run(["train", "--data", str(data), "--model", "gcn", "--epochs", "1",
                "--out", str(folder / "gcn")]) == 0  # fmt: skip
    nir.write(folder / "net.nir", chain_graph())
    x = np.random.default_rng(0).uniform(0, 1, (3, 6, 2, 8))
    np.save(folder / "x.npy", x)
    graph = ["--input", str(folder / "x.npy")]
    for backend in ("snntorch", "loihi-emu-float"):
        out = str(folder / f"sim-{backend}.npz")
        assert run(["simulate", str(folder / "net.nir"), *graph, "--backend", backend,
                    "--record", "lif1", "--out", out]) == 0  # fmt: skip
    assert run(["energy", str(folder / "net.nir"), *graph, "--out", str(folder / "e.json")]) == 0
    assert run(["convert", str(folder / "net.nir"), "--out", str(folder / "lava")]) == 0
    return folder


def test_report_of_a_hand_made_run_has_every_section(run_dir: Path, tmp_path: Path) -> None:
    """Training curves, accuracy per backend, energy, parity (float backends agree exactly) and
    Loihi 2 resources; nothing left out."""
    out = tmp_path / "report"
    assert run(["report", str(run_dir), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert list(report["training"]) == ["gcn"] and report["training"]["gcn"][0]["epoch"] == 1
    backends = {run["backend"] for run in report["simulations"].values()}
    assert backends == {"snntorch", "loihi-emu-float"}
    assert set(report["energy"]) == {"e.json"}
    (pair,) = report["parity"]
    assert pair["per_layer"]["lif1"] == 1.0 and pair["per_layer"]["output"] == 1.0
    assert report["loihi2"]["lava"]["neurons"] == 28
    assert report["left_out"] == []
    markdown = (out / "report.md").read_text()
    for heading in ("Training", "Accuracy per backend", "Energy per sample", "Spike parity",
                    "Loihi 2 resources"):  # fmt: skip
        assert f"## {heading}" in markdown
    assert (out / "training.png").stat().st_size > 0


def test_report_says_what_it_left_out(run_dir: Path, tmp_path: Path) -> None:
    """One backend only: no parity, and report.md says why."""
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(run_dir / "sim-snntorch.npz", partial)
    assert run(["report", str(partial)]) == 0
    report = json.loads((partial / "report" / "report.json").read_text())
    assert any(why.startswith("spike parity") and "found snntorch" in why
               for why in report["left_out"])  # fmt: skip
    assert any(why.startswith("training") for why in report["left_out"])
    assert "## Left out" in (partial / "report" / "report.md").read_text()


def test_a_folder_with_nothing_to_report_is_one_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    assert run(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds nothing a report can use" in err
    assert not (tmp_path / "report").exists()
