"""Operation counts of a NIR graph from the values a run actually produced (the GCN teacher's
dense MACs: benchmarks/teacher_macs.py).

The rules are NeuroBench's (`SynapticOperations`, neurobench 2.x), reproduced here because
NeuroBench is not a dependency (tests/test_counting.py checks them on a snnTorch Linear+Leaky
model against an independent implementation of its rule):

- Effective ACs: a synapse node (Affine, Linear, Conv1d, Conv2d) whose input is binary (spikes of
  a LIF/IF/CubaLIF/Threshold node, or values that are all 0/1) does one accumulate per spike per
  non-zero weight the spike reaches. The fan-out of every input element is computed exactly by
  pushing ones back through the layer with its weights replaced by (w != 0) — convolution borders,
  stride, padding, dilation and groups included.
- Effective MACs: a synapse node whose input is not binary does one multiply-accumulate per
  non-zero input element per non-zero weight it reaches.
- Dense ops: what a dense implementation does: every input element × every weight position
  (zero weights included, padding excluded), once per step.

One deviation from NeuroBench, stated wherever it is reported: under direct coding the input is
identical at every time step, so a MAC layer fed by it is computed once per sample, not T times
(detected from the data: a MAC layer counts once only when its input is identical over all steps
of every sample). Its dense ops are counted once too, so sparsity gains are not overstated.

Neuron updates are every neuron of every neuron node at every step. Each layer is one synapse
node (MK-SGN's fusion layer is four nodes "layer2.synapse.<modality>"); a neuron node's updates
are reported on the first synapse node (in execution order) that feeds it, so the columns sum to
the totals. A layer's `firing_rate` is the activity of its input (spikes per input neuron per
step; for a MAC layer the fraction of non-zero inputs), the rate the paper's approximation
SOP = firing rate × T × FLOPs uses; `neuron_firing_rate` is the rate of the neurons it drives.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import nir
import numpy as np
import torch

from mksgn.convert.nir_graph import FlatGraph, back_edges, flatten_graph
from mksgn.convert.nir_nodes import BINARY_TYPES, NEURON_TYPES, SPIKING_TYPES
from mksgn.convert.nir_validation import flatten_output_shape
from mksgn.errors import MksgnError
from mksgn.targets.base import RunResult

if TYPE_CHECKING:
    from mksgn.convert.artifact import Artifact

SYNAPSE_TYPES: tuple[type, ...] = (nir.Affine, nir.Linear, nir.Conv1d, nir.Conv2d)


@dataclass
class LayerCount:
    """Operation counts of one synapse node, per sample (averaged over the samples run)."""

    name: str
    kind: str  # "ac" (binary input) or "mac" (graded input)
    sources: tuple[str, ...]
    acs: float
    macs: float
    neuron_updates: float
    firing_rate: float  # activity of the input: spikes (or non-zero values) per element per step
    dense_ops: float
    paper_sop: float  # fr × T × FLOPs (AC layers; 0 for MAC layers)
    flops_per_step: float  # dense synapse count of one step
    direct_coded: bool  # a MAC layer counted once per sample (input identical at every step)
    neuron_node: str | None = None
    neuron_firing_rate: float | None = None
    # Paper-style count: FLOPs of one step of the factorised layer (graph metadata
    # "factorised_flops_per_step", written by mksgn's export); None: not known, and the
    # paper-style figures fall back to the deployed dense count `flops_per_step`.
    factorised_flops_per_step: float | None = None
    paper_flops: float = 0.0  # MAC layers: paper FLOPs per sample (once under direct coding)
    # What the rates are computed from (totals over the samples, kept so shards can be merged):
    # active input elements (spikes, or non-zero values) and the element-steps observed.
    input_events: float = 0.0
    input_slots: float = 0.0


@dataclass
class GraphCount:
    """Counts of every synapse layer of a graph for `samples` samples of `time_steps` steps."""

    layers: list[LayerCount]
    samples: int
    time_steps: int
    spikes: dict[str, float] = field(default_factory=dict)  # per neuron node, per sample
    averaged: bool = True  # False: the layers hold totals over the samples (count_totals)
    # Totals: neuron node -> [spikes (None if it does not spike), neuron updates].
    neurons: dict[str, list] = field(default_factory=dict)

    @property
    def acs(self) -> float:
        """Accumulates per sample."""
        return float(sum(layer.acs for layer in self.layers))

    @property
    def macs(self) -> float:
        """Multiply-accumulates per sample."""
        return float(sum(layer.macs for layer in self.layers))

    @property
    def neuron_updates(self) -> float:
        """Neuron updates per sample."""
        return float(sum(layer.neuron_updates for layer in self.layers))


# ---------------------------------------------------------------------------------------------
# Fan-out: how many synapses each input element reaches.


def synapse_fanout(node: nir.NIRNode, in_shape: tuple[int, ...], dense: bool = False) -> np.ndarray:
    """Per input element (shaped `in_shape`), the number of (non-zero, or with `dense` all)
    weights it reaches: the gradient of Σ outputs of the layer with 0/1 weights and no bias."""
    from mksgn.targets.reference import build_kernel

    weight = np.asarray(node.weight)
    binary = np.ones_like(weight, dtype=np.float64) if dense else (weight != 0).astype(np.float64)
    if isinstance(node, nir.Linear):
        replaced = dataclasses.replace(node, weight=binary)
    else:
        replaced = dataclasses.replace(node, weight=binary, bias=np.zeros(np.shape(node.bias)))
    kernel = build_kernel("fanout", replaced, 1.0, torch.float64)
    probe = torch.zeros((1, *in_shape), dtype=torch.float64, requires_grad=True)
    (gradient,) = torch.autograd.grad(kernel.step(probe).sum(), probe)
    return gradient[0].numpy()


# ---------------------------------------------------------------------------------------------
# What each synapse node received.


@dataclass
class SourceValues:
    """The values one incoming edge delivered to a synapse node at every step."""

    origin: str  # the Input or recorded node they come from (through Flatten nodes)
    values: np.ndarray  # (samples, T, *input shape of the synapse)
    binary: bool


def flat_structure(graph: nir.NIRGraph) -> tuple[FlatGraph, dict, list, set]:
    """Flattened nodes and edges (inner identities bypassed) and the cycle-closing edges."""
    flat = flatten_graph(graph)
    nodes, edges = flat.without_passthrough()
    return flat, nodes, edges, back_edges(nodes, edges, flat.inputs)


def traced_origin(name: str, nodes: dict, edges: list) -> str:
    """The node whose values reach `name` through Flatten nodes (Flatten with one input only)."""
    while isinstance(nodes[name], nir.Flatten):
        sources = [s for s, t in edges if t == name]
        if len(sources) != 1:
            return name
        name = sources[0]
    return name


def required_records(graph: nir.NIRGraph) -> tuple[str, ...]:
    """Nodes a run must record for counting: every neuron node, and any other node (not an
    Input) whose values feed a synapse node."""
    _, nodes, edges, _ = flat_structure(graph)
    names = [n for n, node in nodes.items() if isinstance(node, NEURON_TYPES)]
    for source, target in edges:
        if isinstance(nodes[target], SYNAPSE_TYPES):
            origin = traced_origin(source, nodes, edges)
            if not isinstance(nodes[origin], nir.Input):
                names.append(origin)
    return tuple(dict.fromkeys(names))


def delivered(
    source: str,
    nodes: dict,
    edges: list,
    cyclic: set,
    values_of: dict[str, np.ndarray],
    shift: int = 0,
) -> tuple[str, np.ndarray]:
    """(origin, values (samples, T, *shape)) that `source` outputs, reconstructed from recorded
    values through Flatten nodes; `shift` steps of delay from cycle-closing edges on the way."""
    node = nodes[source]
    if source in values_of:
        values = values_of[source]
    elif isinstance(node, nir.Flatten):
        (upstream,) = [s for s, t in edges if t == source]
        origin, inner = delivered(
            upstream, nodes, edges, cyclic, values_of, int((upstream, source) in cyclic)
        )
        shape = flatten_output_shape(node, inner.shape[2:])
        return origin, delay(inner.reshape(*inner.shape[:2], *shape), shift)
    else:
        raise MksgnError(
            f"node {source!r} feeds a synapse but its values were not recorded; record it "
            "(the snntorch backend records any node)"
        )
    return source, delay(values, shift)


def delay(values: np.ndarray, steps: int) -> np.ndarray:
    """Values delayed by `steps` time steps (zeros first): a cycle-closing edge carries the
    previous step's value, and a neuron is silent before the first step."""
    if steps == 0:
        return values
    delayed = np.zeros_like(values)
    delayed[:, steps:] = values[:, :-steps]
    return delayed


def is_binary(values: np.ndarray) -> bool:
    """All values 0 or 1."""
    return bool(np.all((values == 0) | (values == 1)))


def synapse_sources(
    name: str, nodes: dict, edges: list, cyclic: set, values_of: dict[str, np.ndarray]
) -> list[SourceValues]:
    """What each incoming edge of synapse node `name` delivered at every step."""
    found = []
    for source, target in edges:
        if target != name:
            continue
        shift = int((source, target) in cyclic)
        origin, values = delivered(source, nodes, edges, cyclic, values_of, shift)
        origin_node = nodes[traced_origin(source, nodes, edges)]
        binary = isinstance(origin_node, BINARY_TYPES) or is_binary(values)
        found.append(SourceValues(origin, values, binary))
    return found


# ---------------------------------------------------------------------------------------------
# Counting.


def per_element_sum(values: np.ndarray, fanout: np.ndarray) -> float:
    """Σ over samples, steps and elements of values × fan-out, in float64 (exact for counts)."""
    flat = values.reshape(-1, fanout.size)
    return float(np.sum(flat.astype(np.float64) @ fanout.reshape(-1).astype(np.float64)))


def identical_over_steps(values: np.ndarray) -> bool:
    """The input of every sample is the same at every step (direct coding)."""
    return bool(np.all(values == values[:, :1]))


def count_layer(name: str, node: nir.NIRNode, sources: list[SourceValues]) -> LayerCount:
    """Counts of one synapse node from what it received (totals over samples, not yet averaged)."""
    samples, steps = sources[0].values.shape[:2]
    in_shape = tuple(sources[0].values.shape[2:])
    fanout = synapse_fanout(node, in_shape)
    dense_fanout = float(synapse_fanout(node, in_shape, dense=True).sum())
    elements = int(np.prod(in_shape))
    if all(source.binary for source in sources):
        spikes = sum(float(np.sum(source.values, dtype=np.float64)) for source in sources)
        acs = sum(per_element_sum(source.values, fanout) for source in sources)
        slots = float(samples * steps * elements * len(sources))
        rate = spikes / slots
        return LayerCount(
            name=name,
            kind="ac",
            sources=tuple(source.origin for source in sources),
            acs=acs,
            macs=0.0,
            neuron_updates=0.0,
            firing_rate=rate,
            dense_ops=dense_fanout * steps * samples * len(sources),
            paper_sop=rate * steps * dense_fanout * samples * len(sources),
            flops_per_step=dense_fanout * len(sources),
            direct_coded=False,
            input_events=spikes,
            input_slots=slots,
        )
    total = sum(source.values for source in sources)
    direct = steps > 1 and identical_over_steps(total)
    counted = total[:, :1] if direct else total
    nonzero = (counted != 0).astype(np.float64)
    return LayerCount(
        name=name,
        kind="mac",
        sources=tuple(source.origin for source in sources),
        acs=0.0,
        macs=per_element_sum(nonzero, fanout),
        neuron_updates=0.0,
        firing_rate=float(nonzero.mean()),
        dense_ops=dense_fanout * counted.shape[1] * samples,
        paper_sop=0.0,
        flops_per_step=dense_fanout,
        direct_coded=direct,
        input_events=float(nonzero.sum()),
        input_slots=float(nonzero.size),
    )


def execution_order(flat: FlatGraph) -> list[str]:
    """Node names in the order the reference executor runs them."""
    from mksgn.targets.reference import schedule

    return schedule(flat).order


def count_operations(
    graph: nir.NIRGraph, inputs: np.ndarray, recorded: dict[str, np.ndarray]
) -> GraphCount:
    """Per-layer counts per sample from the inputs (samples, T, *input shape) and the recorded
    values of every node `required_records` names (shaped (samples, T, *shape))."""
    return average_counts(count_totals(graph, inputs, recorded))


def count_totals(
    graph: nir.NIRGraph, inputs: np.ndarray, recorded: dict[str, np.ndarray]
) -> GraphCount:
    """Like count_operations, but every layer's counts are totals over the samples (what shards
    of one evaluation add up; `average_counts` turns them into per-sample counts)."""
    flat, nodes, edges, cyclic = flat_structure(graph)
    missing = [name for name in required_records(graph) if name not in recorded]
    if missing:
        raise MksgnError(f"counting needs the recorded values of {missing}; the run lacks them")
    samples, steps = inputs.shape[:2]
    values_of = {name: np.asarray(values) for name, values in recorded.items()}
    for name in flat.inputs:
        values_of[name] = np.asarray(inputs)
    order = [name for name in execution_order(flat) if name in nodes]
    layers = []
    for name in order:
        if isinstance(nodes[name], SYNAPSE_TYPES):
            sources = synapse_sources(name, nodes, edges, cyclic, values_of)
            layers.append(count_layer(name, nodes[name], sources))
    factorised = (graph.metadata or {}).get("factorised_flops_per_step") or {}
    for layer in layers:
        if layer.name in factorised:
            layer.factorised_flops_per_step = float(factorised[layer.name])
    neuron_nodes = [name for name in order if isinstance(nodes[name], NEURON_TYPES)]
    by_name = {layer.name: layer for layer in layers}
    per_neuron: dict[str, list] = {}
    for neuron in neuron_nodes:
        values = values_of[neuron]
        neurons = int(np.prod(values.shape[2:]))
        updates = float(neurons * steps * samples)
        fired = None
        if isinstance(nodes[neuron], SPIKING_TYPES):
            fired = float(np.sum(values, dtype=np.float64))
        per_neuron[neuron] = [fired, updates]
        feeders = [s for s, t in edges if t == neuron and s in by_name]
        if feeders:
            owner = by_name[min(feeders, key=order.index)]
        else:  # neurons fed without a synapse node: a row of their own
            owner = LayerCount(neuron, "none", (), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, False)
            layers.append(owner)
        owner.neuron_updates += updates
        owner.neuron_node = neuron
    return GraphCount(layers, int(samples), int(steps), averaged=False, neurons=per_neuron)


def average_counts(totals: GraphCount) -> GraphCount:
    """Per-sample counts, rates and spikes from totals over the samples (count_totals or
    merge_counts)."""
    samples, steps = totals.samples, totals.time_steps
    spikes = {
        neuron: fired / samples
        for neuron, (fired, _) in totals.neurons.items()
        if fired is not None
    }
    layers = []
    for total in totals.layers:
        layer = dataclasses.replace(total)
        if layer.kind != "none":
            layer.firing_rate = layer.input_events / layer.input_slots
        paper_flops_per_step = (
            layer.flops_per_step
            if layer.factorised_flops_per_step is None
            else layer.factorised_flops_per_step
        )
        if layer.kind == "ac":
            layer.paper_sop = layer.firing_rate * steps * paper_flops_per_step * samples
        if layer.kind == "mac":
            calls = 1 if layer.direct_coded else steps
            layer.paper_flops = paper_flops_per_step * calls * samples
        if layer.neuron_node in spikes:
            updates = totals.neurons[layer.neuron_node][1]
            layer.neuron_firing_rate = spikes[layer.neuron_node] * samples / updates
        for key in ("acs", "macs", "neuron_updates", "dense_ops", "paper_sop", "paper_flops"):
            setattr(layer, key, getattr(layer, key) / samples)
        layers.append(layer)
    return GraphCount(layers, int(samples), int(steps), spikes, neurons=totals.neurons)


def merge_counts(parts: list[GraphCount]) -> GraphCount:
    """Totals of one evaluation from the totals of its shards (count_totals of each slice)."""
    first = parts[0]
    merged = [dataclasses.replace(layer) for layer in first.layers]
    for part in parts[1:]:
        if part.time_steps != first.time_steps or [
            (layer.name, layer.kind, layer.neuron_node) for layer in part.layers
        ] != [(layer.name, layer.kind, layer.neuron_node) for layer in merged]:
            raise MksgnError("the shards counted different graphs or time steps; cannot merge")
        for into, layer in zip(merged, part.layers, strict=True):
            if into.direct_coded != layer.direct_coded:
                raise MksgnError(
                    f"layer '{layer.name}' is direct-coded in some shards only, so a single "
                    "run would count it differently; run the evaluation unsharded"
                )
            for key in ("acs", "macs", "neuron_updates", "dense_ops", "input_events"):
                setattr(into, key, getattr(into, key) + getattr(layer, key))
            into.input_slots += layer.input_slots
    neurons = {name: list(values) for name, values in first.neurons.items()}
    for part in parts[1:]:
        for name, (fired, updates) in part.neurons.items():
            if fired is not None:
                neurons[name][0] += fired
            neurons[name][1] += updates
    samples = sum(part.samples for part in parts)
    return GraphCount(merged, samples, first.time_steps, averaged=False, neurons=neurons)


def run_and_count(
    graph: nir.NIRGraph,
    inputs: np.ndarray,
    backend: str,
    timeout_s: float | None = None,
    batch_size: int | None = None,
    input_abs_max: float | None = None,
    totals: bool = False,
    artifact: Artifact | None = None,
) -> tuple[GraphCount, RunResult]:
    """Run the graph on a backend, recording what counting needs, and count per sample (with
    `totals`, totals over the samples: count_totals); batch_size, input_abs_max and artifact as
    for make_target."""
    from mksgn.targets.simulate import make_target

    target = make_target(backend, timeout_s, batch_size, input_abs_max, artifact)
    result = target.run(graph, inputs, required_records(graph))
    counts = count_totals(graph, inputs, result.recorded)
    return (counts if totals else average_counts(counts)), result
