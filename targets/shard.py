"""Sharded evaluations: `--shard i/n` runs contiguous slice i (1-based) of n of the samples and
writes its result with what merging needs; `mksgn merge OUT PART...` combines the parts into the
result one run over all samples gives (simulate.merge_simulations, energy.merge_energy). Shards
coordinate only through their files; this module slices and checks.

A part records the slice it ran and the input range of the whole run (max |x| over all samples,
not over its slice), which fixed point quantises for: so every shard runs the same fixed-point
network a single run would, and merged predictions, spike counts and operation counts equal a
single run's exactly (only wall times differ).
"""

from __future__ import annotations

import dataclasses
import json
import re

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
    from mksgn.targets.job import input_abs_max

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
