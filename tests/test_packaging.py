"""mksgn installs as one distribution; its top-level folders never leak as generic modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mksgn

GENERIC_NAMES = ["train", "convert", "targets", "benchmarks", "tests", "cli", "errors", "atomic"]


def test_only_mksgn_is_importable_from_outside_the_checkout(tmp_path: Path) -> None:
    # lava-nc and lava-dl install a `tests` package of their own; only ours must not leak.
    probe = (
        "import importlib.util, json;"
        f"names = {GENERIC_NAMES!r};"
        "specs = {n: importlib.util.find_spec(n) for n in names};"
        "print(json.dumps({n: s.origin if s else None for n, s in specs.items()}));"
        "import mksgn.train.data, mksgn.convert, mksgn.targets, mksgn.benchmarks, mksgn.cli"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    checkout = Path(mksgn.__file__).parent
    origins = json.loads(result.stdout)
    ours = {n: {checkout / n / "__init__.py", checkout / f"{n}.py"} for n in GENERIC_NAMES}
    leaked = {n for n, origin in origins.items() if origin and Path(origin) in ours[n]}
    assert leaked == set()


def test_console_script_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("mksgn")
    result = subprocess.run(
        [str(script), "--version"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"mksgn, version {mksgn.__version__}"


def test_python_is_3_10() -> None:
    # lava-nc 0.10.0 breaks on 3.11; the venv scripts must have picked 3.10.
    assert sys.version_info[:2] == (3, 10)
