"""Sharded evaluations: `--shard i/n` runs contiguous slice i (1-based) of n of the samples and
writes its result with what merging needs; `mksgn merge OUT PART...` combines the parts into the
result one run over all samples gives. Shards coordinate only through their files.

A part records the slice it ran and the input range of the whole run (max |x| over all samples,
not over its slice), which fixed point quantises for: so every shard runs the same fixed-point
network a single run would, and merged predictions, spike counts and operation counts equal a
single run's exactly (only wall times differ).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from mksgn.errors import MksgnError

SHARD_KEY = "mksgn_shard"  # npz member (simulate) or JSON key (energy) of a part's metadata
FORMAT = 1
# Metadata every part of one evaluation must agree on.
SHARED_FIELDS = (
    "kind",
    "count",
    "total_samples",
    "input_abs_max",
    "model",
    "backend",
    "time_steps",
    "steps_per_sample",
)


@dataclasses.dataclass(frozen=True)
class Shard:
    """Slice `index` (1-based) of `count` contiguous slices of the samples."""

    index: int
    count: int

    def bounds(self, total: int) -> tuple[int, int]:
        """[start, stop) of this slice among `total` samples; MksgnError if it is empty."""
        start, stop = (self.index - 1) * total // self.count, self.index * total // self.count
        if start == stop:
            raise MksgnError(
                f"shard {self.index}/{self.count} is empty: there are only {total} samples; "
                "use fewer shards"
            )
        return start, stop

    def metadata(self, kind: str, total: int, abs_max: float, **fields: object) -> dict:
        """The part's metadata: which slice of which run it holds."""
        start, stop = self.bounds(total)
        return dict(
            format=FORMAT,
            kind=kind,
            index=self.index,
            count=self.count,
            start=start,
            stop=stop,
            total_samples=total,
            input_abs_max=abs_max,
            **fields,
        )


def parse_shard(text: str) -> Shard:
    """'i/n' with 1 <= i <= n -> Shard; MksgnError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise MksgnError(f"--shard takes i/n (e.g. 2/8), got {text!r}")
    index, count = int(match[1]), int(match[2])
    if not 1 <= index <= count:
        raise MksgnError(f"--shard {text}: i must be between 1 and n")
    return Shard(index, count)


def shard_inputs(
    inputs: np.ndarray, labels: np.ndarray | None, shard: Shard
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """This shard's slice of the inputs and labels, and max |x| over all inputs (the range a
    single run quantises for)."""
    from mksgn.targets.lava import input_abs_max

    abs_max = input_abs_max(inputs)
    start, stop = shard.bounds(len(inputs))
    return inputs[start:stop], None if labels is None else labels[start:stop], abs_max


def check_parts(metas: list[dict], names: list[str], kind: str) -> list[int]:
    """The order (by slice) of parts that together cover one evaluation exactly once."""
    for meta, name in zip(metas, names, strict=True):
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise MksgnError(f"{name} is not a part written with --shard (or by another version)")
        if meta.get("kind") != kind:
            raise MksgnError(
                f"{name} is a part of 'mksgn {meta.get('kind')}', the others of 'mksgn {kind}'"
            )
    for field in SHARED_FIELDS:
        values = {json.dumps(meta.get(field)) for meta in metas}
        if len(values) > 1:
            raise MksgnError(
                f"the parts come from different runs: their {field} differ ({', '.join(values)})"
            )
    count = int(metas[0]["count"])
    indices = sorted(int(meta["index"]) for meta in metas)
    if indices != list(range(1, count + 1)):
        missing = sorted(set(range(1, count + 1)) - set(indices))
        repeated = sorted({i for i in indices if indices.count(i) > 1})
        raise MksgnError(
            f"the parts do not cover all {count} shards once"
            + (f"; missing {', '.join(f'{i}/{count}' for i in missing)}" if missing else "")
            + (f"; repeated {', '.join(f'{i}/{count}' for i in repeated)}" if repeated else "")
        )
    order = sorted(range(len(metas)), key=lambda k: int(metas[k]["index"]))
    expected = 0
    for k in order:
        if int(metas[k]["start"]) != expected:
            raise MksgnError(f"{names[k]} does not start where the previous shard ends")
        expected = int(metas[k]["stop"])
    if expected != int(metas[0]["total_samples"]):
        raise MksgnError("the parts do not add up to the run's samples")
    return order


def read_simulate_part(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """A simulate part's metadata and arrays."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as error:  # BadZipFile, ValueError, OSError, ...
        raise MksgnError(f"{path} is not a readable .npz part ({error})") from None
    if SHARD_KEY not in arrays:
        raise MksgnError(f"{path} was not written with --shard: it has no shard metadata")
    try:
        meta = json.loads(str(arrays.pop(SHARD_KEY)))
    except ValueError:
        raise MksgnError(f"{path}: its shard metadata is not JSON") from None
    return meta, arrays


def merge_simulations(out: Path, paths: list[Path]) -> object:
    """Concatenate simulate parts into OUT (what `simulate --out` writes for all samples) and
    return the merged Simulation."""
    from mksgn.atomic import atomic_savez
    from mksgn.targets.base import RunResult
    from mksgn.targets.simulate import Simulation

    parts = [read_simulate_part(path) for path in paths]
    metas = [meta for meta, _ in parts]
    order = check_parts(metas, [str(path) for path in paths], "simulate")
    keys = set(parts[0][1])
    for (_, arrays), path in zip(parts, paths, strict=True):
        if set(arrays) != keys:
            raise MksgnError(f"{path} recorded other nodes than {paths[0]}; cannot merge")
    arrays = {key: np.concatenate([parts[k][1][key] for k in order]) for key in sorted(keys)}
    first, total = metas[order[0]], int(metas[0]["total_samples"])
    for key, values in arrays.items():
        if len(values) != total:
            raise MksgnError(f"the parts' '{key}' arrays hold {len(values)} samples, not {total}")
    counts: dict[str, int] = {}
    for meta in metas:
        for name, count in meta["spike_counts"].items():
            counts[name] = counts.get(name, 0) + int(count)
    atomic_savez(out, **arrays)
    result = RunResult(
        backend=first["backend"],
        recorded={},
        time_steps=int(first["time_steps"]),
        steps_per_sample=int(first["steps_per_sample"]),
        wall_s_per_sample=sum(float(meta["wall_s"]) for meta in metas) / total,
    )
    return Simulation(
        Path(first["model"]),
        result,
        first["output"],
        arrays["predictions"],
        arrays.get("labels"),
        counts,
    )


def merge(out: str | os.PathLike[str], parts: list[str | os.PathLike[str]]) -> tuple[str, object]:
    """Merge the parts of a sharded `simulate` (.npz, giving a Simulation) or `energy` (.json,
    giving the report) into OUT; returns (kind, merged result)."""
    out, paths = Path(out), [Path(part) for part in parts]
    for path in paths:
        if not path.is_file():
            raise MksgnError(f"part {path} does not exist")
    if out.resolve() in {path.resolve() for path in paths}:
        raise MksgnError(f"OUT {out} is one of the parts; write the merged result elsewhere")
    zipped = [zipfile.is_zipfile(path) for path in paths]
    if all(zipped):
        return "simulate", merge_simulations(out, paths)
    if any(zipped):
        raise MksgnError("mix of .npz (simulate) and JSON (energy) parts; merge one kind at once")
    from mksgn.benchmarks.energy import merge_energy

    return "energy", merge_energy(out, paths)
