"""Running the `mksgn` console entry point in-process, as the tests do."""

from __future__ import annotations

import pytest

from mksgn.cli import main


def run(args: list[str]) -> int:
    """The exit code of `mksgn ARGS` (0 when the command returns normally)."""
    with pytest.raises(SystemExit) as stopped:
        main(args)
        raise SystemExit(0)
    return int(stopped.value.code or 0)
