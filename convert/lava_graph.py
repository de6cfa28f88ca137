"""Lower a NIR graph to a Lava process-graph plan (convert/lava_plan.py; pure NumPy).

The plan has one neuron population per NIR neuron (plus a non-spiking readout population for an
Output fed by a synapse) and one Lava synapse per linear path between two populations: a chain of
NIR linear nodes (Affine, Linear, Scale, Conv, pooling, Flatten, Delay) is composed into one Lava
Dense, or kept as a convolution when the path is a single one. A convolution runs as a Lava Conv or,
when that is cheaper (Lava 0.10's Conv model loops over channel pairs in Python), as a Lava Sparse
matrix with the same weights in Lava's flat order. Lava Dense/Conv/Sparse deliver their output one
step later; every population gets a pipeline depth (the Lava step on which it handles
NIR step 0) and identity Dense hops are inserted where paths of unequal depth meet.

build_plan runs named steps: nir_validation.validate_graph (every node's shape), Lowering.of (nested
graphs inlined, what Lava cannot run refused), Lowering.populations, Lowering.synapses, and
assign_depths.
"""

from __future__ import annotations

import dataclasses

import nir
import numpy as np

from mksgn.convert.lava_plan import (
    BIAS_SOURCE,
    CONV_LOWERINGS,
    MAX_DENSE_ENTRIES,
    MAX_SPARSE_ENTRIES,
    NEVER_SPIKES,
    SECONDS_PER_SPARSE_NONZERO,
    LavaPlan,
    Population,
    Synapse,
    conv_nonzeros,
    lava_order,
    lava_shape,
    to_lava,
)
from mksgn.convert.linear_nodes import (
    broadcast,
    conv_kernel,
    conv_params,
    linear_apply,
    linear_bias,
    uniform,
)
from mksgn.convert.nir_graph import back_edges, flatten_graph
from mksgn.convert.nir_nodes import (
    DEFAULT_DT,
    LINEAR_TYPES,
    MAX_DELAY_STEPS,
    NEURON_TYPES,
    SPIKING_TYPES,
)
from mksgn.convert.nir_validation import validate_graph
from mksgn.errors import MksgnError

# ---------------------------------------------------------------------------- lowering


@dataclasses.dataclass
class Path:
    """A chain of linear nodes from a state node (input or neuron) to a state node."""

    source: str
    nodes: list[str]
    delay_steps: int
    back_edge: bool


def neuron_population(
    name: str, node: nir.NIRNode, shape: tuple[int, ...], dt: float
) -> tuple[Population, np.ndarray]:
    """The Lava LIF parameters of a NIR neuron and the per-neuron factor on its input current."""
    lshape = lava_shape(shape)
    kind = type(node).__name__

    def reset_zero() -> None:
        if np.any(np.asarray(node.v_reset) != 0):
            raise MksgnError(
                f"node '{name}' ({kind}): v_reset must be 0 (Lava resets the voltage to zero)"
            )

    if isinstance(node, (nir.IF, nir.I)):
        gain = broadcast(node.r, shape, "r", name)
        dv, du, leak = 0.0, 1.0, np.zeros(shape)
    elif isinstance(node, (nir.LIF, nir.LI)):
        tau = uniform(node.tau, "tau", name)
        dv, du = dt / tau, 1.0
        gain = broadcast(node.r, shape, "r", name) * dt / tau
        leak = broadcast(node.v_leak, shape, "v_leak", name) * dt / tau
    else:  # CubaLIF, CubaLI
        tau_mem = uniform(node.tau_mem, "tau_mem", name)
        tau_syn = uniform(node.tau_syn, "tau_syn", name)
        dv, du = dt / tau_mem, dt / tau_syn
        w_in = broadcast(getattr(node, "w_in", 1.0), shape, "w_in", name)
        gain = broadcast(node.r, shape, "r", name) * dt / tau_mem * du * w_in
        leak = broadcast(node.v_leak, shape, "v_leak", name) * dt / tau_mem
    if not (0.0 <= dv <= 1.0 and 0.0 < du <= 1.0):
        raise MksgnError(
            f"node '{name}' ({kind}): dt/tau must lie in (0, 1] for forward Euler "
            f"(got du={du:g}, dv={dv:g} with dt={dt:g}); pass a smaller --dt"
        )
    spiking = isinstance(node, SPIKING_TYPES)
    if spiking:
        reset_zero()
        vth = uniform(node.v_threshold, "v_threshold", name)
    else:
        vth = NEVER_SPIKES
    population = Population(
        name=name,
        nir_type=kind,
        nir_shape=shape,
        lava_shape=lshape,
        du=du,
        dv=dv,
        vth=vth,
        bias=to_lava(leak, shape),
        spiking=spiking,
    )
    return population, gain


def bias_source(target: Population, current: np.ndarray) -> tuple[Population, Synapse]:
    """A one-neuron population that spikes on every step and a Dense synapse that turns its
    spikes into `current` (NIR layout of `target`) added to the target's synaptic input."""
    source = Population(
        name=f"{target.name}.bias",
        nir_type=BIAS_SOURCE,
        nir_shape=(1,),
        lava_shape=(1,),
        du=1.0,
        dv=1.0,
        vth=0.5,
        bias=np.ones(1),  # above the threshold: a spike on every step, from any state
        spiking=True,
    )
    column = to_lava(np.asarray(current, dtype=np.float64), target.nir_shape).reshape(-1, 1)
    synapse = Synapse(
        name=source.name,
        source=source.name,
        target=target.name,
        kind="dense",
        weight=column,
        graded=False,
    )
    return source, synapse


def build_plan(
    graph: nir.NIRGraph, dt: float = DEFAULT_DT, conv_lowering: str = "auto"
) -> LavaPlan:
    """Lower a NIR graph to Lava populations and synapses with pipeline depths.

    conv_lowering: "auto" runs each convolution as whichever of Lava Conv and Lava Sparse is
    estimated to be cheaper per step; "conv" or "sparse" forces one of them."""
    if not dt > 0:
        raise MksgnError(f"dt must be positive, got {dt}")
    if conv_lowering not in CONV_LOWERINGS:
        raise MksgnError(
            f"conv_lowering must be one of {', '.join(CONV_LOWERINGS)}, got {conv_lowering!r}"
        )
    graph_shapes = validate_graph(graph)
    lowering = Lowering.of(graph, graph_shapes, dt)
    populations, gains, records, outputs = lowering.populations()
    synapses = lowering.synapses(populations, gains, conv_lowering)
    assign_depths(synapses, populations, lowering.input_name)
    input_shape = lowering.shapes[lowering.input_name]
    return LavaPlan(
        input_name=lowering.input_name,
        input_nir_shape=input_shape,
        input_lava_shape=lava_shape(input_shape),
        populations=populations,
        synapses=synapses,
        records=records,
        outputs=outputs,
        dt=dt,
    )


@dataclasses.dataclass
class Lowering:
    """A validated NIR graph as the lowering sees it: nested graphs inlined, every node's shape
    (from nir_validation.validate_graph), its predecessors, and the edges that close cycles."""

    nodes: dict[str, nir.NIRNode]
    edges: list[tuple[str, str]]
    shapes: dict[str, tuple[int, ...]]
    predecessors: dict[str, list[str]]
    cyclic: set[tuple[str, str]]
    input_name: str
    dt: float

    @classmethod
    def of(cls, graph: nir.NIRGraph, shapes: dict[str, tuple[int, ...]], dt: float) -> Lowering:
        """Inline the graph and refuse what Lava cannot run."""
        nodes, edges = flatten_graph(graph).without_passthrough()
        check_lava_nodes(nodes)
        inputs = [n for n, v in nodes.items() if isinstance(v, nir.Input)]
        if len(inputs) != 1:
            raise MksgnError(
                f"the graph needs exactly one Input node, found {len(inputs)}: {inputs}"
            )
        predecessors: dict[str, list[str]] = {n: [] for n in nodes}
        for source, target in edges:
            predecessors[target].append(source)
        cyclic = back_edges(nodes, edges, inputs)
        check_cycles_pass_neurons(nodes, edges)
        return cls(nodes, edges, shapes, predecessors, cyclic, inputs[0], dt)

    def populations(
        self,
    ) -> tuple[dict[str, Population], dict[str, np.ndarray], dict[str, tuple[str, str]], tuple]:
        """One population per neuron and per Output fed through a synapse (a readout), the
        per-neuron factor on each one's input, what to record for each node, and the Outputs."""
        populations: dict[str, Population] = {}
        gains: dict[str, np.ndarray] = {}
        records: dict[str, tuple[str, str]] = {}
        outputs: list[str] = []
        for name, node in self.nodes.items():
            if isinstance(node, NEURON_TYPES):
                populations[name], gains[name] = neuron_population(
                    name, node, self.shapes[name], self.dt
                )
                records[name] = (name, "spikes" if populations[name].spiking else "v")
        for name, node in self.nodes.items():
            if not isinstance(node, nir.Output):
                continue
            outputs.append(name)
            preds = self.predecessors[name]
            if len(preds) == 1 and preds[0] in populations:
                records[name] = records[preds[0]]
            elif len(preds) == 1 and preds[0] == self.input_name:
                raise MksgnError(
                    f"Output '{name}' is fed by the Input directly: nothing to simulate"
                )
            else:  # a readout: integrates nothing, v = this step's summed input plus bias
                readout = readout_population(f"{name}.readout", self.shapes[name])
                populations[readout.name] = readout
                gains[readout.name] = np.ones(self.shapes[name])
                records[name] = (readout.name, "v")
        for pop in populations.values():
            if pop.spiking:
                continue
            for s, t in self.edges:
                if s == pop.name and not isinstance(self.nodes.get(t), nir.Output):
                    raise MksgnError(
                        f"node '{s}' ({pop.nir_type}) feeds '{t}': a non-spiking neuron can only "
                        "feed an Output on Lava (its LIF sends spikes, not voltages)"
                    )
        return populations, gains, records, tuple(outputs)

    def synapses(
        self,
        populations: dict[str, Population],
        gains: dict[str, np.ndarray],
        conv_lowering: str,
    ) -> list[Synapse]:
        """One synapse per linear path into each population, and the biases: folded into the
        population's own bias, or fed by a bias source where a synaptic filter must shape them
        (bias-source populations are added to `populations`)."""
        synapses: list[Synapse] = []
        bias_sources: dict[str, Population] = {}
        for target, pop in populations.items():
            nir_target = target.removesuffix(".readout") if pop.nir_type == "readout" else target
            bias = np.broadcast_to(self.bias_into(nir_target), pop.nir_shape)
            if pop.du < 1.0 and np.any(bias != 0):
                # NIR feeds a bias through the synaptic current (I ← α·I + a·b, a rising filter),
                # while Lava's LIF adds its bias to the voltage: the bias arrives as input instead.
                source, synapse = bias_source(pop, bias * gains[target])
                bias_sources[source.name] = source
                synapses.append(synapse)
            else:
                pop.bias = pop.bias + to_lava(bias * gains[target], pop.nir_shape)
            for path in self.paths_into(nir_target):
                if not path.nodes:
                    raise MksgnError(
                        f"edge '{path.source}' -> '{nir_target}' joins two state nodes without a "
                        "synapse; put an Affine/Conv/Scale between them"
                    )
                synapses.append(
                    lower_path(
                        path,
                        self.nodes,
                        self.shapes,
                        pop,
                        gains[target],
                        self.input_name,
                        conv_lowering,
                    )
                )
        populations.update(bias_sources)
        for syn in synapses:
            if syn.source not in populations and syn.source != self.input_name:
                raise MksgnError(f"synapse '{syn.name}' starts at '{syn.source}', not a neuron")
        return synapses

    def paths_into(self, name: str) -> list[Path]:
        """Every linear path ending at `name`, traced back to a state node."""
        result = []
        for pred in self.predecessors[name]:
            back = (pred, name) in self.cyclic
            node = self.nodes[pred]
            if not isinstance(node, LINEAR_TYPES):
                result.append(Path(pred, [], 0, back))
                continue
            delay = self.delay_steps(pred, node) if isinstance(node, nir.Delay) else 0
            result.extend(
                Path(
                    path.source,
                    [*path.nodes, pred],
                    path.delay_steps + delay,
                    path.back_edge or back,
                )
                for path in self.paths_into(pred)
            )
        return result

    def delay_steps(self, name: str, node: nir.Delay) -> int:
        """A Delay node's delay in whole steps of dt."""
        steps = uniform(node.delay, "delay", name) / self.dt
        delay = round(steps)
        if abs(steps - delay) > 1e-6 or not 0 <= delay <= MAX_DELAY_STEPS:
            raise MksgnError(
                f"node '{name}' (Delay): delay must be a whole number of steps of "
                f"dt={self.dt:g}, at most {MAX_DELAY_STEPS}"
            )
        return delay

    def bias_into(self, name: str) -> np.ndarray | float:
        """The constant part of the summed input of `name`: upstream linear nodes' biases."""
        total: np.ndarray | float = 0.0
        for pred in self.predecessors[name]:
            node = self.nodes[pred]
            if not isinstance(node, LINEAR_TYPES):
                continue
            upstream = self.bias_into(pred)
            own = linear_bias(pred, node, self.shapes[pred])
            if np.ndim(upstream) or np.any(upstream):
                in_shape = self.shapes[self.predecessors[pred][0]]
                upstream = np.broadcast_to(upstream, in_shape)
                through = linear_apply(pred, node, upstream[None], in_shape)[0]
                total = total + through + (0.0 if own is None else own)
            elif own is not None:
                total = total + own
        return total


def check_lava_nodes(nodes: dict[str, nir.NIRNode]) -> None:
    """Refuse node types Lava cannot run, and convolutions it would pad differently from torch."""
    for name, node in nodes.items():
        if not isinstance(node, NEURON_TYPES + LINEAR_TYPES + (nir.Input, nir.Output)):
            raise MksgnError(
                f"node '{name}' has type {type(node).__name__}, which the Lava converter does "
                "not support (supported: Input, Output, Affine, Linear, Scale, Conv1d, Conv2d, "
                "SumPool2d, AvgPool2d, Flatten, Delay, LIF, IF, LI, I, CubaLIF, CubaLI)"
            )
        if isinstance(getattr(node, "padding", None), str) and node.padding == "same":
            geometry = conv_params(node)
            reach = [
                d * (k - 1) for k, d in zip(geometry["kernel"], geometry["dilation"], strict=True)
            ]
            if any(r % 2 for r in reach):
                # torch (the reference backends) pads one side more then; Lava's Conv pads evenly
                raise MksgnError(
                    f"node '{name}' ({type(node).__name__}): padding 'same' with kernel "
                    f"{np.shape(node.weight)[2:]} needs uneven padding, which Lava's Conv cannot "
                    "do; export explicit padding"
                )


def check_cycles_pass_neurons(nodes: dict[str, nir.NIRNode], edges: list[tuple[str, str]]) -> None:
    """Refuse a cycle of linear nodes only: Lava carries a cycle in a neuron's state."""
    linear = {name: node for name, node in nodes.items() if isinstance(node, LINEAR_TYPES)}
    between = [(s, t) for s, t in edges if s in linear and t in linear]
    closing = sorted(back_edges(linear, between, []))
    if closing:
        raise MksgnError(
            f"node '{closing[0][1]}' is on a cycle without a neuron; Lava cannot run it"
        )


def readout_population(name: str, shape: tuple[int, ...]) -> Population:
    """A population that never spikes and whose voltage is this step's summed input."""
    return Population(
        name=name,
        nir_type="readout",
        nir_shape=shape,
        lava_shape=lava_shape(shape),
        du=1.0,
        dv=1.0,
        vth=NEVER_SPIKES,
        bias=np.zeros(lava_shape(shape)),
        spiking=False,
    )


def lower_path(
    path: Path,
    nodes: dict,
    shapes: dict,
    target: Population,
    gain: np.ndarray,
    input_name: str,
    conv_lowering: str = "auto",
) -> Synapse:
    """One Lava synapse for a linear path, with the target's input gain folded into it."""
    source_shape = shapes[path.source]  # validate_graph made what arrives fit the target
    weighted = [n for n in path.nodes if not isinstance(nodes[n], (nir.Flatten, nir.Delay))]
    name = "+".join(path.nodes)
    ends = dict(
        name=name,
        source=path.source,
        target=target.name,
        graded=path.source == input_name,
        extra_hops=path.delay_steps,
        back_edge=path.back_edge,
    )
    convs = (nir.Conv1d, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d)
    if (
        len(weighted) == 1
        and isinstance(nodes[weighted[0]], convs)
        and shapes[weighted[0]] == target.nir_shape
        and shapes_before(path, nodes, shapes, weighted[0]) == source_shape
    ):
        node = nodes[weighted[0]]
        geo = conv_params(node)
        weight, groups = conv_kernel(node, source_shape[0])
        gains_per_channel = gain.reshape(gain.shape[0], -1)
        if not np.all(gains_per_channel == gains_per_channel[:, :1]):
            raise MksgnError(
                f"node '{target.name}': r differs within a channel; a Lava Conv shares weights "
                "over positions, so use one value per channel"
            )
        weight = weight * gains_per_channel[:, 0].reshape(-1, 1, 1, 1)
        # Lava's Conv is a true convolution over (W, H, C): flip the kernel, swap to (W, H).
        lava_weight = weight[:, :, ::-1, ::-1].transpose(0, 3, 2, 1).copy()
        synapse = Synapse(
            **ends,
            kind="conv",
            weight=lava_weight,
            conv=dict(
                input_shape=lava_shape(source_shape),
                stride=geo["stride"][::-1],
                padding=geo["padding"][::-1],
                dilation=geo["dilation"][::-1],
                groups=groups,
            ),
        )
        synapse.nonzeros = conv_nonzeros(lava_weight, synapse.conv, target.lava_shape)
        as_sparse = synapse.nonzeros * SECONDS_PER_SPARSE_NONZERO
        cheaper = as_sparse <= synapse.step_seconds() and synapse.nonzeros <= MAX_SPARSE_ENTRIES
        synapse.sparse = conv_lowering == "sparse" or (conv_lowering == "auto" and cheaper)
        return synapse
    n_in, n_out = int(np.prod(source_shape)), int(np.prod(target.nir_shape))
    if n_in * n_out > MAX_DENSE_ENTRIES:
        raise MksgnError(
            f"path '{name}' ({path.source} -> {target.name}) would need a Dense matrix of "
            f"{n_out}x{n_in}; split it so that a convolution feeds the neuron directly"
        )
    matrix = path_matrix(path, nodes, shapes, source_shape)
    matrix = matrix * gain.reshape(-1, 1)
    matrix = matrix[lava_order(target.nir_shape)][:, lava_order(source_shape)]
    return Synapse(**ends, kind="dense", weight=matrix)


def shapes_before(path: Path, nodes: dict, shapes: dict, node_name: str) -> tuple[int, ...]:
    """The shape entering `node_name` on `path`."""
    index = path.nodes.index(node_name)
    return shapes[path.source] if index == 0 else shapes[path.nodes[index - 1]]


def path_matrix(path: Path, nodes: dict, shapes: dict, source_shape: tuple[int, ...]) -> np.ndarray:
    """The (N_out, N_in) matrix of a bias-free linear path, in NIR flat order."""
    matrix: np.ndarray | None = None  # None = identity so far
    shape = source_shape
    for name in path.nodes:
        node = nodes[name]
        if isinstance(node, (nir.Flatten, nir.Delay)):
            shape = shapes[name]
            continue
        if isinstance(node, (nir.Affine, nir.Linear)):
            weight = np.asarray(node.weight, dtype=np.float64)
            matrix = weight if matrix is None else weight @ matrix
        elif isinstance(node, nir.Scale):
            scale = broadcast(node.scale, shape, "scale", name).reshape(-1, 1)
            matrix = np.diagflat(scale) if matrix is None else scale * matrix
        else:
            n = int(np.prod(shape))
            if n * n > MAX_DENSE_ENTRIES:  # the basis below holds n² values
                raise MksgnError(
                    f"node '{name}' on path '{'+'.join(path.nodes)}' has {n} inputs: too many to "
                    "compose into a Dense matrix; let a convolution feed a neuron directly"
                )
            basis = np.eye(n).reshape((n, *shape))
            conv = linear_apply(name, node, basis, shape).reshape(n, -1).T
            matrix = conv if matrix is None else conv @ matrix
        shape = shapes[name]
    if matrix is None:
        raise MksgnError(f"path '{'+'.join(path.nodes)}' has no weights")
    return matrix


def assign_depths(
    synapses: list[Synapse], populations: dict[str, Population], input_name: str
) -> None:
    """Give each population the Lava step of its NIR step 0 and pad the shorter paths."""
    depth: dict[str, int] = {input_name: 0}
    forward = [s for s in synapses if not s.back_edge]
    for _ in range(len(populations) + 1):
        changed = False
        for syn in forward:
            if syn.source not in depth:
                continue
            # A NIR Delay of n steps becomes n identity hops, so it adds no depth.
            need = depth[syn.source] + 1
            if depth.get(syn.target, -1) < need:
                depth[syn.target] = need
                changed = True
        if not changed:
            break
    else:
        raise MksgnError("the feed-forward part of the graph has a cycle; cannot pipeline it")
    for syn in synapses:
        source = populations.get(syn.source)
        if source is not None and source.nir_type == BIAS_SOURCE and syn.target in depth:
            depth[syn.source] = depth[syn.target] - 1  # a constant: no padding hops needed
    for name, pop in populations.items():
        if name not in depth:
            raise MksgnError(f"node '{name}' is not reachable from the input")
        pop.depth = depth[name]
    for syn in synapses:
        # NIR Delay hops are already in extra_hops and are not pipeline depth; an edge closing
        # a cycle carries the previous step, which the synapse's own one-step buffer provides.
        arrival = depth[syn.source] + (0 if syn.back_edge else 1)
        pad = depth[syn.target] - arrival
        if pad < 0:
            raise MksgnError(
                f"recurrent path '{syn.name}' ({syn.source} -> {syn.target}) reaches back over "
                f"{-pad} pipeline step(s); Lava can only carry a cycle through one synapse"
            )
        syn.extra_hops += pad
