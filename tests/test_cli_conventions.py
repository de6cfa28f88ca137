"""The command-line contract of DESIGN.md: help everywhere, exit codes, one-line errors, --debug."""

from __future__ import annotations

import click
import pytest
from cli_runner import run

from mksgn.cli import cli
from mksgn.errors import MksgnError


def all_command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path below `group`, e.g. ('data', 'prepare')."""
    paths = []
    for name, command in group.commands.items():
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths.extend(all_command_paths(command, (*prefix, name)))
    return paths


@pytest.mark.parametrize("path", all_command_paths(cli), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...], capsys: pytest.CaptureFixture) -> None:
    assert run([*path, "--help"]) == 0
    assert "Usage: mksgn " + " ".join(path) in capsys.readouterr().out


def test_the_design_commands_exist() -> None:
    paths = set(all_command_paths(cli))
    assert {("demo",), ("data", "synth"), ("data", "prepare"), ("data", "inspect")} <= paths


def test_usage_error_exits_2(capsys: pytest.CaptureFixture) -> None:
    assert run(["data", "prepare", "--benchmark", "ntu61"]) == 2
    assert "Invalid value for '--benchmark'" in capsys.readouterr().err


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture) -> None:
    assert run(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err


@pytest.fixture
def failing_commands():
    """Temporarily add commands that fail the two ways a runtime error can."""

    @cli.command("fail-known")
    def fail_known() -> None:
        raise MksgnError("model.nir: node 'x' has no type; re-export the graph")

    @cli.command("fail-bug")
    def fail_bug() -> None:
        raise ZeroDivisionError("division by zero")

    yield
    del cli.commands["fail-known"]
    del cli.commands["fail-bug"]


def test_runtime_error_is_one_line_and_exit_1(failing_commands, capsys) -> None:
    assert run(["fail-known"]) == 1
    captured = capsys.readouterr()
    assert captured.err == "Error: model.nir: node 'x' has no type; re-export the graph\n"
    assert captured.out == ""


def test_unexpected_exception_is_still_one_line(failing_commands, capsys) -> None:
    assert run(["fail-bug"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("Error: ZeroDivisionError: division by zero")
    assert "Traceback" not in err


def test_debug_flag_anywhere_shows_the_traceback(failing_commands, capsys) -> None:
    assert run(["fail-known", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().endswith("Error: model.nir: node 'x' has no type; re-export the graph")


def test_a_checkpoint_where_a_graph_belongs_and_back_say_what_to_run(tmp_path, capsys) -> None:
    """A checkpoint given to simulate, and a NIR graph given to evaluate or export, are one
    Error line naming the command to run instead (not torch's or h5py's internals)."""
    import nir
    import numpy as np
    import torch

    checkpoint = tmp_path / "checkpoint.pt"
    torch.save({"model_state": {}}, checkpoint)
    graph = tmp_path / "model.nir"
    nodes = {"input": nir.Input(input_type=np.array([2])), "output": nir.Output(np.array([2]))}
    nir.write(graph, nir.NIRGraph(nodes=nodes, edges=[("input", "output")]))
    np.save(tmp_path / "x.npy", np.zeros((2, 2)))

    args = ["simulate", str(checkpoint), "--input", str(tmp_path / "x.npy")]
    assert run([*args, "--backend", "snntorch"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"'mksgn export {checkpoint} --nir MODEL.nir'" in err
    for command in (
        ["evaluate", str(graph), "--data", str(tmp_path / "x.npy")],
        ["export", str(graph), "--nir", str(tmp_path / "o.nir")],
    ):
        assert run(command) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"Error: {graph} is a NIR graph (HDF5), not a training checkpoint")
        assert f"'mksgn simulate {graph}'" in err


def test_every_option_says_what_it_does() -> None:
    missing = [
        (" ".join(path), option.opts[0])
        for path in all_command_paths(cli)
        if not isinstance(command := cli_command(path), click.Group)
        for option in command.params
        if isinstance(option, click.Option) and not option.help
    ]
    assert missing == []


def cli_command(path: tuple[str, ...]) -> click.Command:
    """The command at a command path."""
    command: click.Command = cli
    for name in path:
        command = command.commands[name]
    return command
