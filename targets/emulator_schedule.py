"""What the emulator (targets/emulator.py) runs when: a plan's populations grouped into strongly
connected blocks in the order data flows, each over the simulator steps its recorded consumers
read, and the series of values passed between blocks, which know their silent and repeated
steps so that a synapse multiplies each distinct step once."""

from __future__ import annotations

import dataclasses

import torch

from mksgn.convert.lava_plan import LavaPlan


@dataclasses.dataclass(frozen=True)
class Block:
    """Populations that run together, steps [first, last] (simulator steps from 1): one
    population outside any cycle, or a strongly connected set stepped through time together."""

    populations: tuple[str, ...]
    first: int
    last: int
    cyclic: bool


@dataclasses.dataclass
class Series:
    """Values of a population's output, a synapse's products or an input over consecutive
    simulator steps: (steps, batch, neurons in Lava's flat order) from step `first`, with per
    step -1 where all values are zero, else the index of the first step holding the same
    values. The values may end before the pattern does where every later step is silent (an
    input after a sample's T steps): steps the values do not hold are zero."""

    values: torch.Tensor
    first: int
    pattern: list[int]

    @classmethod
    def silent(
        cls, size: int, steps: int, batch: int, first: int, dtype: torch.dtype, device: object
    ) -> Series:
        """All-zero values over `steps` steps, one step of memory expanded over all."""
        zeros = torch.zeros((1, batch, size), dtype=dtype, device=device)
        return cls(zeros.expand(steps, -1, -1), first, [-1] * steps)

    def distinct(self) -> tuple[list[int], torch.Tensor]:
        """The steps whose values no earlier step repeats (silent ones left out), and their
        values (a view where they are consecutive)."""
        steps = sorted({index for index in self.pattern if index >= 0})
        if steps and steps == list(range(steps[0], steps[-1] + 1)):
            return steps, self.values[steps[0] : steps[-1] + 1]
        return steps, self.values[steps]

    def steps(self, lo: int, hi: int) -> Series:
        """The part from simulator step lo to hi."""
        start, stop = lo - self.first, hi - self.first + 1
        first_seen: dict[int, int] = {}  # a repeated step now stands for the first in the part
        pattern = [
            -1 if index < 0 else first_seen.setdefault(index, step)
            for step, index in enumerate(self.pattern[start:stop])
        ]
        return Series(self.values[start:stop], lo, pattern)

    def padded(self, before: int, after: int) -> Series:
        """Zero steps added before and after."""
        held, batch, size = self.values.shape
        # Only the added steps and those the values do not hold are zeroed: a whole-array fill
        # cost as much as the copy.
        values = self.values.new_empty((before + len(self.pattern) + after, batch, size))
        values[:before] = 0.0
        values[before : before + held] = self.values
        values[before + held :] = 0.0
        pattern = (
            [-1] * before + [i + before if i >= 0 else -1 for i in self.pattern] + [-1] * after
        )
        return Series(values, self.first - before, pattern)


def repeats(values: torch.Tensor) -> list[int]:
    """The pattern of (steps, batch, neurons) values: -1 for an all-zero step, else the index of
    the first of a run of equal consecutive steps it belongs to."""
    pattern: list[int] = []
    for step in range(values.shape[0]):
        current = values[step]
        if not bool(current.any()):
            pattern.append(-1)
        elif step and pattern[-1] >= 0 and torch.equal(current, values[step - 1]):
            pattern.append(pattern[-1])
        else:
            pattern.append(step)
    return pattern


def add_series(parts: list[Series], dtype: torch.dtype) -> Series:
    """The sum of series over the same steps, added in list order in `dtype` (a single part is
    returned as it is); a step is silent where every part is, and repeats an earlier step where
    every part repeats that same step."""
    if len(parts) == 1:
        return parts[0]
    total = parts[0].values.to(dtype) + parts[1].values.to(dtype)
    for part in parts[2:]:
        total += part.values.to(dtype)
    pattern = []
    for step in range(total.shape[0]):
        indices = {part.pattern[step] for part in parts}
        if indices == {-1}:
            pattern.append(-1)
        elif len(indices) == 1:
            pattern.append(indices.pop())
        else:
            pattern.append(step)
    return Series(total, parts[0].first, pattern)


def schedule(plan: LavaPlan, steps: int, recorded: tuple[str, ...]) -> list[Block]:
    """The blocks to run, in an order where every block comes after the blocks feeding it, each
    with the steps its recorded consumers need; populations nothing recorded depends on are
    left out. A block outside a cycle starts at its reset (NIR step 0) when nothing before it is
    needed, else at step 1 like a whole Lava run."""
    import networkx

    graph = networkx.DiGraph()
    graph.add_nodes_from(plan.populations)
    graph.add_edges_from(
        (syn.source, syn.target) for syn in plan.synapses if syn.source in plan.populations
    )
    condensed = networkx.condensation(graph)
    order = list(networkx.topological_sort(condensed))
    needed: dict[str, tuple[int, int]] = {}  # population -> (lo, hi) steps its consumers read
    for name in recorded:
        depth = plan.populations[name].depth
        needed[name] = (depth + 1, depth + steps)
    blocks: list[Block] = []
    for component in reversed(order):
        members = tuple(sorted(condensed.nodes[component]["members"]))
        spans = [needed[name] for name in members if name in needed]
        if not spans:
            continue
        cyclic = len(members) > 1 or graph.has_edge(members[0], members[0])
        last = max(hi for _, hi in spans)
        first = 1
        if not cyclic and spans[0][0] > plan.populations[members[0]].depth:
            first = plan.populations[members[0]].depth + 1
        blocks.append(Block(members, first, last, cyclic))
        for syn in plan.synapses:
            if syn.target in members and syn.source in plan.populations:
                delay = 1 + syn.extra_hops
                lo, hi = max(first - delay, 1), last - delay
                if syn.source not in members and hi >= lo:
                    old_lo, old_hi = needed.get(syn.source, (lo, hi))
                    needed[syn.source] = (min(lo, old_lo), max(hi, old_hi))
    return blocks[::-1]
