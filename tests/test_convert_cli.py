"""`mksgn convert`: artifact folder with manifest (and netx), errors leave nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import nir
import numpy as np
import pytest
from cli_runner import run as run_cli
from lava.lib.dl import netx

# At collection, before any test runs: importing Lava's runtime calls
# multiprocessing.set_start_method('fork'), which raises once anything in the process has fixed
# the start method (the first tqdm bar does, through its lock; training shows bars).
from mksgn.benchmarks.support.graphs import lif


def chain_graph() -> nir.NIRGraph:
    """Input(2, 8) -> Conv1d -> LIF -> Flatten -> Affine -> LIF -> Output."""
    rng = np.random.default_rng(0)
    shape1, shape2 = (3, 8), (4,)

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
    names = ["fixed_point.npz", "manifest.json", "model.net", "model.nir", "plan.npz"]
    assert sorted(p.name for p in out.iterdir()) == names
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pipeline_depth"] == 2 and manifest["dt"] == 1e-4
    assert manifest["nodes"]["lif1"]["lava_process"] == "LIFReset"
    assert manifest["nodes"]["lif2"]["depth"] == 2
    kinds = {v["lava_process"] for k, v in manifest["nodes"].items() if k.startswith("synapse")}
    assert kinds == {"Sparse", "Dense"}  # the conv runs as Sparse: Lava's Conv loops in Python
    assert manifest["fixed_point_parameters"]["flat+fc"]["max_error_of_peak_weight"] < 0.01
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


def simulate_output(folder: Path, inputs: Path, backend: str, out: Path, *extra: str) -> np.ndarray:
    """The Output spikes `mksgn simulate FOLDER` writes."""
    args = ["simulate", str(folder), "--input", str(inputs), "--backend", backend]
    assert run_cli([*args, "--out", str(out), *extra]) == 0
    with np.load(out) as saved:
        return saved["output"]


def test_a_fixed_point_folder_runs_its_stored_integers(tmp_path: Path, capsys) -> None:
    """Scales are chosen once, at convert time, from --calibrate: the first 2 samples spike the
    same whether 2 or 8 samples run (they did not when each run quantised for its own inputs),
    on lava-fixed and the emulator alike, and the stored weights are the ones that ran."""
    model = tmp_path / "model.nir"
    nir.write(model, chain_graph())
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (8, 6, 2, 8))
    x[5:] *= 3.0  # the later samples widen the input range
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "first2.npy", x[:2])
    out = tmp_path / "fixed"
    args = ["convert", str(model), "--out", str(out), "--fixed-point"]
    assert run_cli([*args, "--calibrate", str(tmp_path / "x.npy"), "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["calibration"]["input_abs_max"] == pytest.approx(np.abs(x).max(), rel=1e-6)
    for backend in ("loihi-emu", "lava-fixed"):
        two = simulate_output(out, tmp_path / "first2.npy", backend, tmp_path / f"{backend}2.npz")
        eight = simulate_output(out, tmp_path / "x.npy", backend, tmp_path / f"{backend}8.npz")
        assert two.sum() > 0 and np.array_equal(two, eight[:2]), backend
    from mksgn.convert.fixed_point import load_fixed_plan

    fixed = load_fixed_plan(out / "fixed_point.npz")
    assert fixed.input_abs_max == manifest["calibration"]["input_abs_max"]
    assert [syn.name for syn in fixed.synapses] == list(manifest["fixed_point_parameters"])[:2]


def test_a_damaged_folder_is_one_error_naming_the_file(tmp_path: Path, capsys) -> None:
    """A changed, missing or foreign file in a converted folder stops the run before it starts,
    naming the file and the command that rebuilds it."""
    model = tmp_path / "model.nir"
    nir.write(model, chain_graph())
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(0, 1, (2, 4, 2, 8)))
    out = tmp_path / "fixed"
    assert run_cli(["convert", str(model), "--out", str(out), "--fixed-point"]) == 0
    run = ["simulate", str(out), "--input", str(tmp_path / "x.npy"), "--backend", "loihi-emu"]
    assert run_cli(run) == 0
    stored = out / "fixed_point.npz"
    original = stored.read_bytes()
    stored.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    capsys.readouterr()
    assert run_cli(run) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fixed_point.npz does not match its checksum" in err
    assert "mksgn convert" in err
    stored.unlink()
    assert run_cli(run) == 1
    assert "fixed_point.npz is missing" in capsys.readouterr().err
    stored.write_bytes(original)
    assert run_cli(run) == 0


def test_inputs_beyond_the_calibrated_range_are_refused(tmp_path: Path, capsys) -> None:
    """Without --calibrate, fixed point is quantised for ±1; larger inputs would clip silently,
    so the run is refused with what to run instead."""
    model = tmp_path / "model.nir"
    nir.write(model, chain_graph())
    np.save(tmp_path / "x.npy", np.full((1, 4, 2, 8), 2.5))
    out = tmp_path / "fixed"
    assert run_cli(["convert", str(model), "--out", str(out), "--fixed-point"]) == 0
    capsys.readouterr()
    args = ["simulate", str(out), "--input", str(tmp_path / "x.npy"), "--backend", "loihi-emu"]
    assert run_cli(args) == 1
    err = capsys.readouterr().err
    assert "beyond the ±1" in err and "--calibrate" in err


def test_a_float_folder_runs_with_its_stored_dt(tmp_path: Path) -> None:
    """`convert --dt` is what the folder runs with (simulate used to take the default again)."""
    model = tmp_path / "model.nir"
    nir.write(model, chain_graph())
    np.save(tmp_path / "x.npy", np.random.default_rng(1).uniform(0, 1, (2, 6, 2, 8)))
    outputs = {}
    for dt in ("1e-4", "2e-5"):
        folder = tmp_path / f"dt{dt}"
        assert run_cli(["convert", str(model), "--out", str(folder), "--dt", dt]) == 0
        outputs[dt] = simulate_output(
            folder, tmp_path / "x.npy", "loihi-emu-float", tmp_path / f"{dt}.npz"
        )
    assert not np.array_equal(outputs["1e-4"], outputs["2e-5"])


NETX_RUN = """
import sys
import numpy as np
from lava.lib.dl import netx
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc import io

folder, data_file, out_file = sys.argv[1:]
data = np.load(data_file)
net = netx.hdf5.Network(net_config=f"{folder}/model.net", input_message_bits=24)
source = io.source.RingBuffer(data=data)
sink = io.sink.RingBuffer(shape=net.out.shape, buffer=data.shape[-1])
source.s_out.connect(net.inp)
net.out.connect(sink.a_in)
try:
    net.run(condition=RunSteps(num_steps=data.shape[-1]), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    np.save(out_file, sink.data.get())
finally:
    net.stop()
"""


@pytest.mark.timeout(300)
def test_netx_file_run_by_lava_dl_reproduces_lava_fixed(tmp_path: Path) -> None:
    """lava-dl's own netx.hdf5.Network, loaded from `convert --netx` and run in Lava fixed point,
    spikes exactly as `simulate DIR --backend lava-fixed` on the same folder (after the pipeline
    depth, which mksgn's run removes)."""
    import subprocess
    import sys

    from mksgn.convert.artifact import read_artifact
    from mksgn.targets.job import prepare_job

    model = tmp_path / "model.nir"
    nir.write(model, chain_graph())
    folder = tmp_path / "netx"
    assert run_cli(["convert", str(model), "--out", str(folder), "--fixed-point", "--netx"]) == 0
    x = np.random.default_rng(0).uniform(0, 1, (1, 24, 2, 8))
    np.save(tmp_path / "x.npy", x)
    mksgn = simulate_output(folder, tmp_path / "x.npy", "lava-fixed", tmp_path / "mk.npz")[0]
    artifact = read_artifact(folder)
    job = prepare_job(artifact.plan, x, (), True, None, artifact.fixed)
    np.save(tmp_path / "data.npy", job.stream_data(0, 1).astype(np.int32))
    subprocess.run(
        [
            sys.executable,
            "-c",
            NETX_RUN,
            str(folder),
            str(tmp_path / "data.npy"),
            str(tmp_path / "o.npy"),
        ],
        check=True,
        timeout=240,
        capture_output=True,
    )
    netx_spikes = np.load(tmp_path / "o.npy")  # (neurons, T + depth)
    depth = artifact.plan.depth
    assert mksgn.sum() > 3, "trivial test: too few output spikes"
    assert np.array_equal(netx_spikes[:, depth : depth + x.shape[1]].T, mksgn)


def test_a_folder_runs_without_lowering_the_nir_again(tmp_path: Path, monkeypatch) -> None:
    """simulate DIR executes the plan the folder stores: with the lowering made to fail, the run
    still works and spikes as the .nir lowered afresh does."""
    model = tmp_path / "model.nir"
    nir.write(model, chain_graph())
    np.save(tmp_path / "x.npy", np.random.default_rng(2).uniform(0, 1, (3, 6, 2, 8)))
    folder = tmp_path / "fixed"
    assert run_cli(["convert", str(model), "--out", str(folder), "--fixed-point"]) == 0
    fresh = simulate_output(model, tmp_path / "x.npy", "loihi-emu", tmp_path / "fresh.npz")

    def no_lowering(*_args, **_kwargs):
        raise AssertionError("the NIR graph was lowered again")

    for module in ("mksgn.convert.artifact", "mksgn.targets.plan_target"):
        monkeypatch.setattr(f"{module}.build_plan", no_lowering)
    stored = simulate_output(folder, tmp_path / "x.npy", "loihi-emu", tmp_path / "stored.npz")
    assert stored.sum() > 0 and np.array_equal(stored, fresh)
