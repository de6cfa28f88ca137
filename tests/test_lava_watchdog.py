"""The Lava watchdog: failures inside Lava become MksgnError quickly and leave nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import nir
import numpy as np
import pytest
from process_helpers import lava_session, start_mksgn, stop, wait_until

from mksgn.benchmarks.support.graphs import dense_lif_graph, lif
from mksgn.convert.fixed_point import quantize_plan
from mksgn.convert.lava_graph import build_plan
from mksgn.errors import MksgnError
from mksgn.processes import processes_where, shm_segments
from mksgn.targets import memory
from mksgn.targets.lava import (
    BASE_TIMEOUT_S,
    LavaTarget,
    killed_text,
    run_watched,
    step_seconds_estimate,
    watchdog_timeout,
)


def tiny_graph() -> nir.NIRGraph:
    """Input -> Affine (identity) -> LIF -> Output."""
    return dense_lif_graph(np.eye(3))


def lava_descendants() -> list[int]:
    """Processes whose parent is this test process (our Lava children and their sessions)."""
    return processes_where("ppid", os.getpid())


def job_for(plan, fixed, data) -> dict:
    """A worker job for one 4-step sample recording the LIF."""
    return dict(
        plan=plan,
        fixed=fixed,
        data=data,
        period=5,
        total_steps=5,
        populations={"lif": "spikes"},
    )


@pytest.mark.timeout(60)
def test_float_parameter_in_fixed_point_model_is_an_error() -> None:
    """A float threshold handed to a fixed-point LIF fails inside Lava: Error, no leftovers."""
    before = shm_segments()
    plan = build_plan(tiny_graph())
    fixed = quantize_plan(plan, 1.0)
    fixed.populations["lif"].dv = 0.25  # what the converter never does
    data = np.ones((3, 5), dtype=np.int32)
    started = time.monotonic()
    with pytest.raises(MksgnError, match=r"layer 'lif'.*dv=0.25 is not an integer"):
        run_watched(job_for(plan, fixed, data), timeout_s=20)
    assert time.monotonic() - started < 25
    assert lava_descendants() == []
    assert shm_segments() - before == set()


@pytest.mark.timeout(60)
def test_exception_inside_a_process_is_reported() -> None:
    """Input data of the wrong shape makes a Lava process raise: Error naming the failure."""
    before = shm_segments()
    plan = build_plan(tiny_graph())
    with pytest.raises(MksgnError, match=r"Lava simulation failed"):
        run_watched(job_for(plan, None, np.ones((7, 5))), timeout_s=30)
    assert lava_descendants() == []
    assert shm_segments() - before == set()


@pytest.mark.timeout(60)
def test_timeout_kills_the_whole_session() -> None:
    """A run that cannot finish in time is stopped at the deadline with every process killed."""
    before = shm_segments()
    started = time.monotonic()
    with pytest.raises(MksgnError, match=r"did not finish within"):
        LavaTarget(timeout_s=0.3).run(tiny_graph(), np.ones((2, 4, 3)))
    assert time.monotonic() - started < 15
    assert lava_descendants() == []
    assert shm_segments() - before == set()


def conv_graph(out_channels: int, in_channels: int) -> nir.NIRGraph:
    """Input (in_channels, 8 frames) -> Conv1d k=3 -> LIF -> Output."""
    frames = 8
    neurons = (out_channels, frames)
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([in_channels, frames])),
            "conv": nir.Conv1d(
                input_shape=frames,
                weight=np.zeros((out_channels, in_channels, 3)),
                stride=1,
                padding=1,
                dilation=1,
                groups=1,
                bias=np.zeros(out_channels),
            ),
            "lif": lif(neurons),
            "output": nir.Output(output_type=np.array(neurons)),
        },
        edges=[("input", "conv"), ("conv", "lif"), ("lif", "output")],
        type_check=False,
    )


def test_watchdog_allows_for_lavas_per_channel_pair_convolution() -> None:
    """Lava's Conv costs one scipy call per channel pair and step: the watchdog must scale
    with it, or a trained tiny MK-SGN (3200 × 1600 channel pairs) is stopped while running."""
    small = build_plan(conv_graph(4, 2), conv_lowering="conv")
    large = build_plan(conv_graph(3200, 1600), conv_lowering="conv")
    assert step_seconds_estimate(large) == pytest.approx(3200 * 1600 * 1e-5)
    assert step_seconds_estimate(large) > 1000 * step_seconds_estimate(small)
    steps = 24
    assert watchdog_timeout(large, processes=5, steps=steps) > 3 * 51.2 * steps
    assert watchdog_timeout(small, processes=5, steps=steps) < BASE_TIMEOUT_S + 60


def test_build_memory_estimate_counts_every_sample_side_by_side() -> None:
    """What a run is checked against before it starts: per sample side by side, fixed point
    dearer than float."""
    plan = build_plan(tiny_graph())
    assert memory.synapse_entries(plan) == 9  # the 3 × 3 Affine
    assert memory.lava_bytes(plan, 1, False) == (0, 9 * memory.LAVA_BYTES_PER_SYNAPSE_ENTRY)
    assert memory.lava_bytes(plan, 1, True)[1] > memory.lava_bytes(plan, 1, False)[1]
    fixed, per_sample = memory.emulator_bytes(plan, 5)
    per_neuron = memory.EMULATOR_BYTES_PER_NEURON_SAMPLE + 5 * memory.EMULATOR_BYTES_PER_NEURON_STEP
    assert fixed == 8 * 9 and per_sample == per_neuron * 3


@pytest.mark.parametrize("backend", ["lava-fixed", "loihi-emu"])
def test_an_oversized_batch_is_refused_before_the_run(
    backend: str, tmp_path, monkeypatch, capsys
) -> None:
    """With less memory available than --batch-size needs, one Error line in seconds gives the
    estimate, the memory available and the largest batch that fits; nothing of Lava starts."""
    from cli_runner import run

    plan = build_plan(tiny_graph())
    fixed, per_sample = (
        memory.lava_bytes(plan, 1, True)
        if backend == "lava-fixed"
        else memory.emulator_bytes(plan, 4 + plan.depth)  # T = 4 steps and the pipeline
    )
    monkeypatch.setattr(memory, "available_bytes", lambda: fixed + 3 * per_sample + 1)
    nir.write(tmp_path / "g.nir", tiny_graph())
    np.save(tmp_path / "x.npy", np.ones((8, 4, 3)))
    args = ["simulate", str(tmp_path / "g.nir"), "--input", str(tmp_path / "x.npy")]
    started = time.monotonic()
    assert run([*args, "--backend", backend, "--batch-size", "8"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--batch-size 8 would need about" in err, err
    assert "the largest --batch-size that fits is 3" in err
    assert time.monotonic() - started < 30 and lava_descendants() == []
    assert run([*args, "--backend", backend, "--batch-size", "3"]) == 0


def test_sigkill_names_the_likely_cause() -> None:
    """The kernel's OOM killer sends SIGKILL: the message says so; other signals do not."""
    assert "likely out of memory" in killed_text(123, signal.SIGKILL)
    assert "out of memory" not in killed_text(123, signal.SIGSEGV)


@pytest.mark.timeout(90)
def test_sigterm_to_simulate_leaves_no_lava_session_behind(tmp_path) -> None:
    """A terminated `mksgn simulate` cleans up like Ctrl-C: its Lava session is killed."""
    graph_file, inputs = tmp_path / "tiny.nir", tmp_path / "x.npy"
    nir.write(graph_file, tiny_graph())
    np.save(inputs, np.ones((20_000, 4, 3), dtype=np.float32))  # 120k Lava steps: minutes
    before = shm_segments()
    simulate = start_mksgn(
        *("simulate", str(graph_file), "--input", str(inputs), "--backend", "lava-float"),
        *("--batch-size", "1"),  # one sample per group: minutes; batched, seconds
    )
    try:
        session = lava_session(simulate)
        assert simulate.poll() is None
        simulate.send_signal(signal.SIGTERM)
        _, err = simulate.communicate(timeout=30)
    finally:
        stop(simulate)
    assert simulate.returncode == 130
    assert err.strip().splitlines()[-1].startswith("Error: interrupted")
    wait_until(lambda: not processes_where("session", session), 5, "the Lava session to end")
    assert shm_segments() - before == set()


@pytest.mark.timeout(120)
def test_sigkilled_caller_takes_its_lava_session_along(tmp_path) -> None:
    """A program running Lava that is SIGKILLed (no handler runs: the OOM killer, kill -9) leaves
    no Lava process and no shared memory behind: the worker notices its parent is gone."""
    graph_file = tmp_path / "tiny.nir"
    nir.write(graph_file, tiny_graph())
    caller = textwrap.dedent(
        f"""
        import numpy as np
        from mksgn.convert.nir_io import read_nir
        from mksgn.targets.lava import LavaTarget
        LavaTarget(timeout_s=600, batch_size=1).run(read_nir({str(graph_file)!r}), np.ones((20_000, 4, 3)))
        """
    )
    before = shm_segments()
    program = subprocess.Popen([sys.executable, "-c", caller])
    try:
        session = lava_session(program)
        program.send_signal(signal.SIGKILL)
        program.wait(timeout=10)
        wait_until(lambda: not processes_where("session", session), 15, "the session to end")
    finally:
        stop(program)
    assert shm_segments() - before == set()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["lava-float", "loihi-emu"])
def test_build_and_run_time_are_reported_apart(backend: str, tmp_path, capsys) -> None:
    """`simulate --json` splits the one-off build from the per-sample run (wall_s_per_sample
    keeps its meaning: both, per sample); the text line says the same. Lava runs in one chunk
    per sample, and the spikes are those of a single run call (the parity tests compare them)."""
    from cli_runner import run

    nir.write(tmp_path / "g.nir", tiny_graph())
    np.save(tmp_path / "x.npy", np.ones((3, 4, 3)))
    args = ["simulate", str(tmp_path / "g.nir"), "--input", str(tmp_path / "x.npy")]
    assert run([*args, "--backend", backend, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["build_s"] > 0 and summary["run_s_per_sample"] > 0
    assert summary["run_s_per_sample"] <= summary["wall_s_per_sample"]
    assert summary["build_s"] + 3 * summary["run_s_per_sample"] <= 3 * summary[
        "wall_s_per_sample"
    ] * (1 + 1e-9)
    assert run([*args, "--backend", backend]) == 0
    text = capsys.readouterr().out
    assert "build " in text and "s/sample" in text
