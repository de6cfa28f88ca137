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
