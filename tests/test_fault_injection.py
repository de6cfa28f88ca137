"""Faults injected into running commands: a Lava process SIGKILLed, SIGINT/SIGTERM during
`data prepare`, `train`, `convert`, `simulate` and `energy`, a full disk and a read-only folder.
Each ends in one `Error:` line (exit 1, or 130 when interrupted) with no half-written output, no
temporary file, no orphaned process and no leaked shared memory; training resumes."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import nir
import numpy as np
import pytest
from cli_runner import run
from model_fixtures import tiny_config
from process_helpers import (
    full_disk,
    lava_session,
    leftovers,
    read_only_dir,
    start_mksgn,
    stop,
    wait_until,
)

from mksgn.benchmarks.support.fuzz.seeds import nir_graphs
from mksgn.benchmarks.support.process_probes import (
    descendants,
    first_lava_process_model,
    lava_process_models,
)
from mksgn.benchmarks.support.raw_files import write_realistic_raw_files
from mksgn.processes import alive, processes_where, shm_segments
from mksgn.train.checkpoint import load_checkpoint, save_checkpoint
from mksgn.train.data import synthetic
from mksgn.train.models import build_model

KILL_TO_EXIT_S = 30  # a killed Lava process must end the command within this (watchdog: hours)


@pytest.fixture
def dense_graph(tmp_path: Path) -> Path:
    """Input(4) -> Affine -> LIF -> Output, and a long input for it: minutes of Lava steps."""
    nir.write(tmp_path / "g.nir", nir_graphs()[0])
    np.save(tmp_path / "x.npy", np.ones((20_000, 4, 4), dtype=np.float32))
    return tmp_path / "g.nir"


def graph_command(kind: str, graph: Path, out: Path) -> list[str]:
    """A Lava run of `graph` on x.npy beside it: `simulate --out` or `energy`."""
    # One sample per Lava group: 100k steps take minutes; batched, the run ends in seconds.
    inputs = ["--input", str(graph.with_name("x.npy")), "--backend", "lava-float"]
    inputs += ["--batch-size", "1"]
    if kind == "simulate":
        return ["simulate", str(graph), *inputs, "--out", str(out)]
    return ["energy", str(graph), *inputs]


def one_error_line(err: str) -> str:
    """The single `Error:` line of stderr (fails if there are other lines)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    return lines[0]


def kill_a_lava_process(dense_graph: Path, find_victim) -> str:
    """Run `simulate --out` on Lava, SIGKILL the process `find_victim(command)` names as
    (session, pid), and check the run ends at once with nothing left; its one Error line."""
    out = dense_graph.with_name("out.npz")
    before = shm_segments()
    command = start_mksgn(*graph_command("simulate", dense_graph, out))
    try:
        session, victim = find_victim(command)
        signal_sent = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        _, err = command.communicate(timeout=KILL_TO_EXIT_S + 30)
        took = time.monotonic() - signal_sent
    finally:
        stop(command)
    assert command.returncode == 1
    line = one_error_line(err)
    assert took < KILL_TO_EXIT_S
    assert alive(set(processes_where("session", session))) == set()
    assert shm_segments() - before == set()
    assert not out.exists() and leftovers(out.parent) == []
    return line


def last_process_model_mid_run(command) -> tuple[int, int]:
    """(session, pid) of the Lava worker's last process model, once all of them run."""
    session = lava_session(command, members=4)
    return session, lava_process_models(session)[-1]


def first_process_model_at_start_up(command) -> tuple[int, int]:
    """(session, pid) of Lava's first process model, within a millisecond of its start."""
    first = first_lava_process_model(command.pid)
    assert first is not None, "no Lava process started"
    return first


@pytest.mark.timeout(180)
def test_sigkill_of_a_lava_process_ends_the_run_at_once(dense_graph: Path) -> None:
    assert "killed by SIGKILL" in kill_a_lava_process(dense_graph, last_process_model_mid_run)


@pytest.mark.timeout(180)
def test_sigkill_of_the_first_lava_process_during_start_up_ends_the_run_at_once(
    dense_graph: Path,
) -> None:
    """Killed as soon as it exists (Lava's shared-memory manager, before any step), a Lava
    process fails the run the moment the runtime trips over it, with a reason that says so."""
    line = kill_a_lava_process(dense_graph, first_process_model_at_start_up)
    assert "killed by SIGKILL" in line or "ended unexpectedly" in line, line


@pytest.mark.timeout(180)
# SIGTERM to simulate: tests/test_lava_watchdog.py; the handler is the same for every command.
@pytest.mark.parametrize(("kind", "signum"), [("energy", signal.SIGINT)])
def test_interrupted_lava_command_leaves_nothing(dense_graph: Path, kind: str, signum) -> None:
    out = dense_graph.with_name("out.npz")
    before = shm_segments()
    command = start_mksgn(*graph_command(kind, dense_graph, out))
    try:
        session = lava_session(command)
        command.send_signal(signum)
        _, err = command.communicate(timeout=60)
    finally:
        stop(command)
    assert command.returncode == 130
    assert one_error_line(err).startswith("Error: interrupted")
    time.sleep(0.5)
    assert alive(set(processes_where("session", session))) == set()
    assert shm_segments() - before == set()
    assert not out.exists() and leftovers(out.parent) == []


def start_prepare_and_wait_for_its_pool(tmp_path: Path):
    """Start `data prepare --workers 2` on 400 files -> (command, its pool's processes, output)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    write_realistic_raw_files(raw, 400)
    out = tmp_path / "out" / "NTU60_CS.npz"
    command = start_mksgn(
        "data", "prepare", "--raw", str(raw), "--benchmark", "ntu60-xsub", "--out", str(out),
        "--workers", "2",
    )  # fmt: skip
    try:
        # Once the pool runs (forkserver, resource tracker and workers below the command).
        pool = wait_until(
            lambda: descendants(command.pid) if len(descendants(command.pid)) >= 3 else None,
            60,
            "the parser pool",
        )
        time.sleep(0.5)
        assert command.poll() is None, "prepare finished before the signal: use more files"
    except BaseException:
        stop(command)
        raise
    return command, pool, out


@pytest.mark.timeout(240)
def test_sigterm_during_data_prepare_leaves_no_npz_and_no_workers(tmp_path: Path) -> None:
    command, pool, out = start_prepare_and_wait_for_its_pool(tmp_path)
    try:
        command.send_signal(signal.SIGTERM)
        _, err = command.communicate(timeout=60)
    finally:
        stop(command)
    assert command.returncode == 130
    assert err.strip().splitlines()[-1].startswith("Error: interrupted")  # after tqdm's bar
    wait_until(lambda: not alive(pool), 10, "the parser workers to exit")
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.timeout(240)
def test_sigkill_of_data_prepare_leaves_no_workers(tmp_path: Path) -> None:
    """No handler runs on SIGKILL: the workers notice the dead parent themselves, and with them
    gone the forkserver ends too. The spool it could not remove goes with the next prepare."""
    command, pool, out = start_prepare_and_wait_for_its_pool(tmp_path)
    stop(command)
    assert command.returncode == -signal.SIGKILL
    wait_until(lambda: not alive(pool), 10, "the parser pool to exit")
    assert not out.exists()
    assert leftovers(out.parent), "nothing to clean: the test no longer tests the cleanup"
    again = start_mksgn(*command.args[1:])
    try:
        _, err = again.communicate(timeout=120)
    finally:
        stop(again)
    assert again.returncode == 0, err
    assert out.exists() and leftovers(out.parent) == []


@pytest.mark.timeout(300)
def test_sigterm_during_train_keeps_the_last_checkpoint_and_resumes(tmp_path: Path) -> None:
    data = tmp_path / "synth.npz"
    synthetic.write_npz(synthetic.generate(classes=2, samples_per_class=4, frames=8), data)
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--model", "base-sgn", "--frames", "8",
            "--batch-size", "8", "--time-steps", "2", "--out", str(out)]  # fmt: skip
    command = start_mksgn(*args, "--epochs", "200")
    try:
        wait_until(lambda: (out / "checkpoint.pt").exists(), 180, "the first checkpoint")
        command.send_signal(signal.SIGTERM)
        _, err = command.communicate(timeout=60)
    finally:
        stop(command)
    assert command.returncode == 130
    assert "Error: interrupted" in err
    assert leftovers(out) == []
    epoch = load_checkpoint(out / "checkpoint.pt").epoch
    assert epoch >= 1
    # The checkpoint is written before the log, so the log may lag it by the interrupted epoch;
    # resuming restores that line from the checkpoint.
    log = out / "metrics.jsonl"
    assert (len(log.read_text().splitlines()) if log.exists() else 0) >= epoch - 1
    assert run([*args, "--epochs", str(epoch + 1), "--resume", "--json"]) == 0
    assert load_checkpoint(out / "checkpoint.pt").epoch == epoch + 1
    logged = [json.loads(line)["epoch"] for line in log.read_text().splitlines()]
    assert logged == list(range(1, epoch + 2))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_convert_writes_leaves_no_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, signum
) -> None:
    """The signal arrives while the artifact folder is half written (manifest being dumped)."""
    from mksgn.convert import artifact

    graph = tmp_path / "g.nir"
    nir.write(graph, nir_graphs()[1])
    real_dumps = json.dumps

    def dumps_then_signal(*args, **kwargs):
        os.kill(os.getpid(), signum)
        return real_dumps(*args, **kwargs)

    monkeypatch.setattr(artifact.json, "dumps", dumps_then_signal)
    assert run(["convert", str(graph), "--out", str(tmp_path / "art")]) == 130
    assert one_error_line(capsys.readouterr().err).startswith("Error: interrupted")
    assert not (tmp_path / "art").exists() and leftovers(tmp_path) == []


# ------------------------------------------------------------------- full disk, read-only


def output_commands(tmp_path: Path, folder: Path) -> dict[str, tuple[list[str], Path]]:
    """Commands writing into `folder`, with the output each one names in its error."""
    graph = tmp_path / "g.nir"
    nir.write(graph, nir_graphs()[1])
    noise = np.random.default_rng(0).normal(0, 10, (600, 3, 2, 6))  # incompressible output
    np.save(tmp_path / "x.npy", noise.astype(np.float32))
    return {
        "data synth": (
            [
                "data",
                "synth",
                "--out",
                str(folder / "sub" / "d.npz"),
                "--classes",
                "2",
                "--samples-per-class",
                "4",
                "--frames",
                "8",
            ],
            folder / "sub" / "d.npz",
        ),
        "convert": (["convert", str(graph), "--out", str(folder / "art")], folder / "art"),
        "simulate --out": (
            [
                "simulate",
                str(graph),
                "--input",
                str(tmp_path / "x.npy"),
                "--backend",
                "snntorch",
                "--record",
                "lif",
                "--out",
                str(folder / "run.npz"),
            ],
            folder / "run.npz",
        ),
    }


@pytest.mark.parametrize("command", ["data synth", "convert", "simulate --out"])
@pytest.mark.parametrize("condition", ["full", "read-only"])
def test_unwritable_output_is_one_error_naming_it(tmp_path: Path, capsys, command, condition):
    folder = tmp_path / "target"
    make = full_disk if condition == "full" else read_only_dir
    with make(folder):
        if condition == "full":  # what the disk still holds must survive untouched
            (folder / "keep.txt").write_text("kept")
        args, output = output_commands(tmp_path, folder)[command]
        capsys.readouterr()
        code = run(args)
        err = capsys.readouterr().err
        assert code == 1, err
        line = one_error_line(err)
        assert str(output) in line and "cannot write" in line
        assert not output.exists()
        present = sorted(p.name for p in folder.iterdir())
        assert present == (["keep.txt"] if condition == "full" else [])


def test_checkpoint_on_a_full_disk_keeps_the_previous_one(tmp_path: Path) -> None:
    from mksgn.errors import MksgnError

    config = tiny_config("base-sgn", 3)
    model = build_model(config)
    folder = tmp_path / "run"
    with full_disk(folder, size_kb=256):
        path = folder / "checkpoint.pt"
        save_args = dict(config=config, model_state=model.state_dict(), optimizer_state=None,
                         scheduler_state=None, metrics={}, rng_state={})  # fmt: skip
        save_checkpoint(path, epoch=1, **save_args)
        padding = {"padding": np.zeros(200_000, dtype=np.uint8).tobytes()}  # no longer fits
        with pytest.raises(MksgnError, match=rf"{path}: cannot write it"):
            save_checkpoint(path, epoch=2, extra=padding, **save_args)
        assert load_checkpoint(path).epoch == 1
        assert leftovers(folder) == []
