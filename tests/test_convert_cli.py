"""`mksgn convert`: artifact folder with manifest (and netx), errors leave nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import nir
import numpy as np
from cli_runner import run as run_cli

# At collection, before any test runs: importing Lava's runtime calls
# multiprocessing.set_start_method('fork'), which raises once anything in the process has fixed
# the start method (the first tqdm bar does, through its lock; training shows bars).
from lava.lib.dl import netx


def chain_graph() -> nir.NIRGraph:
    """Input(2, 8) -> Conv1d -> LIF -> Flatten -> Affine -> LIF -> Output."""
    rng = np.random.default_rng(0)
    shape1, shape2 = (3, 8), (4,)

    def lif(shape):
        return nir.LIF(
            tau=np.full(shape, 2e-4),
            r=np.full(shape, 2.0),
            v_leak=np.zeros(shape),
            v_threshold=np.ones(shape),
            v_reset=np.zeros(shape),
        )

    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([2, 8])),
            "conv": nir.Conv1d(
                input_shape=8,
                weight=rng.normal(0, 1, (3, 2, 3)),
                stride=1,
                padding=1,
                dilation=1,
                groups=1,
                bias=np.zeros(3),
            ),
            "lif1": lif(shape1),
            "flat": nir.Flatten(input_type={"input": np.array(shape1)}, start_dim=0),
            "fc": nir.Affine(weight=rng.normal(0, 1, (4, 24)), bias=np.zeros(4)),
            "lif2": lif(shape2),
            "output": nir.Output(output_type=np.array(shape2)),
        },
        edges=[
            ("input", "conv"),
            ("conv", "lif1"),
            ("lif1", "flat"),
            ("flat", "fc"),
            ("fc", "lif2"),
            ("lif2", "output"),
        ],
    )


def test_convert_writes_manifest_and_netx(tmp_path: Path, capsys) -> None:
    """The folder holds model.nir, a manifest with types/depths/quantisation and a netx file."""
    model = tmp_path / "model.nir"
    nir.write(model, chain_graph())
    out = tmp_path / "artifact"
    assert run_cli(["convert", str(model), "--out", str(out), "--fixed-point", "--netx"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.net", "model.nir"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pipeline_depth"] == 2 and manifest["dt"] == 1e-4
    assert manifest["nodes"]["lif1"]["lava_process"] == "LIFReset"
    assert manifest["nodes"]["lif2"]["depth"] == 2
    kinds = {v["lava_process"] for k, v in manifest["nodes"].items() if k.startswith("synapse")}
    assert kinds == {"Sparse", "Dense"}  # the conv runs as Sparse: Lava's Conv loops in Python
    assert manifest["fixed_point_parameters"]["flat+fc"]["max_rel_weight_error"] < 0.01
    assert "Converted" in capsys.readouterr().out

    network = netx.hdf5.Network(net_config=str(out / "model.net"))
    assert len(network.layers) == 2


def test_corrupt_nir_is_an_error_and_leaves_no_folder(tmp_path: Path, capsys) -> None:
    """A truncated .nir file: exit 1, an Error naming the file, no DIR and no temp folder."""
    model = tmp_path / "model.nir"
    nir.write(model, chain_graph())
    model.write_bytes(model.read_bytes()[:300])
    out = tmp_path / "artifact"
    assert run_cli(["convert", str(model), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error:") and "model.nir" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.nir"]


def test_netx_refuses_branching_graph(tmp_path: Path, capsys) -> None:
    """A graph with a non-CUBA neuron does not fit netx: Error naming the node."""
    graph = chain_graph()
    graph.nodes["lif2"] = nir.LI(tau=np.full(4, 2e-4), r=np.full(4, 2.0), v_leak=np.zeros(4))
    model = tmp_path / "model.nir"
    nir.write(model, graph)
    assert run_cli(["convert", str(model), "--out", str(tmp_path / "a"), "--netx"]) == 1
    assert "'lif2' (LI)" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


def test_existing_out_needs_force_and_only_an_artifact_is_replaced(tmp_path: Path, capsys) -> None:
    model = tmp_path / "model.nir"
    nir.write(model, chain_graph())
    out = tmp_path / "artifact"
    assert run_cli(["convert", str(model), "--out", str(out)]) == 0
    assert run_cli(["convert", str(model), "--out", str(out)]) == 1
    assert "already exists; pass --force" in capsys.readouterr().err
    assert run_cli(["convert", str(model), "--out", str(out), "--force"]) == 0
    precious = tmp_path / "results"
    precious.mkdir()
    (precious / "paper.tex").write_text("keep me")
    assert run_cli(["convert", str(model), "--out", str(precious), "--force"]) == 1
    assert "not a folder written by 'mksgn convert'" in capsys.readouterr().err
    assert (precious / "paper.tex").read_text() == "keep me"


def test_a_fixed_point_artifact_refuses_float_backends(tmp_path: Path, capsys) -> None:
    model = tmp_path / "model.nir"
    nir.write(model, chain_graph())
    out = tmp_path / "fixed"
    assert run_cli(["convert", str(model), "--out", str(out), "--fixed-point"]) == 0
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(0, 1, (4, 2, 8)))
    args = ["--input", str(tmp_path / "x.npy")]
    for command in ("simulate", "energy"):
        for backend in ("loihi-emu-float", "snntorch"):
            capsys.readouterr()
            assert run_cli([command, str(out), *args, "--backend", backend]) == 1
            err = capsys.readouterr().err
            assert "holds a fixed-point artifact" in err and err.count("\n") == 1
    assert run_cli(["simulate", str(out), *args, "--backend", "loihi-emu"]) == 0
