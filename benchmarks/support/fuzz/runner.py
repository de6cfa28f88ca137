"""Fuzzing runs: random mutations of a target's seeds, each run as a case and tallied (`fuzz`),
every target in turn (`fuzz_all`) and one JSON-able row per target (`summary_rows`). A quick
manual run: python -m mksgn.benchmarks.support.fuzz.runner [cases]."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mksgn.benchmarks.support.fuzz.cases import DEFECTS, ERROR, OK, Tally, run_case
from mksgn.benchmarks.support.fuzz.mutators import BYTE_MUTATIONS
from mksgn.benchmarks.support.fuzz.targets import TARGETS, Target


def mutate(target: Target, seed: bytes, steps: Sequence[tuple[str, int]]) -> bytes:
    """Apply the named mutations in order."""
    data = seed
    for name, choice in steps:
        # A structure-aware mutation may not apply to what an earlier one produced: skip it.
        with contextlib.suppress(Exception):
            data = target.mutations[name](data, choice)
    return data


def random_steps(target: Target, rng: np.random.Generator) -> list[tuple[str, int]]:
    """1-3 mutations chosen at random (structure-aware ones more often than byte-level)."""
    names = list(target.mutations)
    weights = np.array([target.byte_weight if n in BYTE_MUTATIONS else 2.0 for n in names])
    picks = rng.choice(len(names), size=int(rng.integers(1, 4)), p=weights / weights.sum())
    return [(names[i], int(rng.integers(2**31))) for i in picks]


def fuzz(target: Target, cases: int, work: Path, seed: int = 0, tally: Tally | None = None):
    """Run `cases` random mutations of the target's seeds; return the Tally."""
    tally = tally or Tally()
    rng = np.random.default_rng(seed)
    seeds = target.make_seeds(work / "seeds")
    for _ in range(cases):
        steps = random_steps(target, rng)
        data = mutate(target, seeds[int(rng.integers(len(seeds)))], steps)
        path = target.write_case(work / "case", data)
        tally.add("+".join(name for name, _ in steps), run_case(target.parse, path))
    return tally


def fuzz_all(cases: int, work: Path, seed: int = 0) -> dict[str, Tally]:
    """`cases` mutations of every target; name -> Tally."""
    tallies = {}
    for target in TARGETS:
        # Named before it runs: a crash (the segfault a forged pickle once caused) then says where.
        print(f"fuzzing {target.name}: {cases} cases", file=sys.stderr, flush=True)
        folder = work / target.name.replace(" ", "_").replace("-", "")
        tallies[target.name] = fuzz(target, cases, folder, seed)
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)
    return tallies


def summary_rows(tallies: dict[str, Tally]) -> list[dict[str, object]]:
    """One JSON-able row per target."""
    return [
        {
            "parser": name,
            "cases": tally.cases,
            "ok": tally.outcomes.get(OK, 0),
            "error": tally.outcomes.get(ERROR, 0),
            "defects": sum(tally.outcomes.get(kind, 0) for kind in DEFECTS),
            "peak_mib": round(tally.peak_bytes / 2**20, 1),
            "first_defects": tally.defects[:5],
        }
        for name, tally in tallies.items()
    ]


# quick manual run: python -m mksgn.benchmarks.support.fuzz.runner [cases]
if __name__ == "__main__":
    import json
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rows = summary_rows(fuzz_all(int(sys.argv[1]) if len(sys.argv) > 1 else 100, Path(tmp)))
    print(json.dumps(rows, indent=1))
    os._exit(0)
