"""Lower a NIR graph to a Lava process-graph plan (convert/lava_plan.py; pure NumPy).

The plan has one neuron population per NIR neuron (plus a non-spiking readout population for an
Output fed by a synapse) and one Lava synapse per linear path between two populations: a chain of
NIR linear nodes (Affine, Linear, Scale, Conv, pooling, Flatten, Delay) is composed into one Lava
Dense, or kept as a convolution when the path is a single one. A convolution runs as a Lava Conv or,
when that is cheaper (Lava 0.10's Conv model loops over channel pairs in Python), as a Lava Sparse
matrix with the same weights in Lava's flat order. Lava Dense/Conv/Sparse deliver their output one
step later; every population gets a pipeline depth (the Lava step on which it handles
NIR step 0) and identity Dense hops are inserted where paths of unequal depth meet.
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
from mksgn.convert.nir_graph import back_edges, flatten_graph
from mksgn.convert.nir_io import (
    DEFAULT_DT,
    LINEAR_TYPES,
    MAX_DELAY_STEPS,
    NEURON_TYPES,
    SPIKING_TYPES,
    flatten_output_shape,
    output_shape,
)
from mksgn.errors import MksgnError

# ---------------------------------------------------------------------------- graph helpers


def parameter_shape(name: str, node: nir.NIRNode) -> tuple[int, ...] | None:
    """The output shape of a node from its declared type or, failing that, from the shape of its
    array parameters (nir_io.node_shape reads only an Input's or Output's declared shape)."""
    out = getattr(node, "output_type", None) or {}
    shape = next(iter(out.values()), None) if out else None
    if shape is not None and np.size(shape) > 0:
        return tuple(int(s) for s in np.atleast_1d(shape))
    for attr in ("tau", "tau_mem", "r", "v_threshold", "bias"):
        value = getattr(node, attr, None)
        if value is not None and np.ndim(value) > 0:
            return tuple(np.shape(value))
    return None


def uniform(value: object, what: str, name: str) -> float:
    """One value shared by a whole population (Lava shares du, dv and vth per process)."""
    array = np.asarray(value, dtype=np.float64)
    if array.size == 0 or not np.all(array == array.flat[0]):
        raise MksgnError(
            f"node '{name}': {what} differs between neurons; Lava shares it per population — "
            "use one value per layer"
        )
    return float(array.flat[0])


def broadcast(value: object, shape: tuple[int, ...], what: str, name: str) -> np.ndarray:
    """A per-neuron parameter as an array shaped like the population."""
    try:
        return np.broadcast_to(np.asarray(value, dtype=np.float64), shape).copy()
    except ValueError as error:
        raise MksgnError(
            f"node '{name}': {what} shaped {np.shape(value)} does not fit the population {shape}"
        ) from error


# ---------------------------------------------------------------------------- linear ops


def conv_params(node: nir.NIRNode) -> dict[str, object]:
    """Kernel geometry of a NIR Conv1d/Conv2d/pool node as 2-D (H, W) tuples."""
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        kernel = tuple(int(k) for k in np.broadcast_to(node.kernel_size, (2,)))
        return dict(
            kernel=kernel,
            stride=tuple(int(s) for s in np.broadcast_to(node.stride, (2,))),
            padding=tuple(int(p) for p in np.broadcast_to(node.padding, (2,))),
            dilation=(1, 1),
        )
    one_d = isinstance(node, nir.Conv1d)
    kernel = tuple(node.weight.shape[2:])
    kernel = (1, kernel[0]) if one_d else kernel
    dilation = (1, int(node.dilation)) if one_d else tuple(np.broadcast_to(node.dilation, (2,)))
    stride = (1, int(node.stride)) if one_d else tuple(np.broadcast_to(node.stride, (2,)))
    if isinstance(node.padding, str):
        if node.padding == "valid":
            padding = (0, 0)
        else:  # 'same': stride 1, even reach (checked by linear_output_shape)
            padding = tuple((d * (k - 1)) // 2 for k, d in zip(kernel, dilation, strict=True))
    else:
        padding = (0, int(node.padding)) if one_d else tuple(np.broadcast_to(node.padding, (2,)))
    return dict(
        kernel=tuple(int(k) for k in kernel),
        stride=tuple(int(s) for s in stride),
        padding=tuple(int(p) for p in padding),
        dilation=tuple(int(d) for d in dilation),
    )


def conv_kernel(node: nir.NIRNode, channels: int) -> tuple[np.ndarray, int]:
    """(C_out, C_in/groups, kh, kw) weight and groups of a conv or pool node."""
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        kh, kw = conv_params(node)["kernel"]
        value = 1.0 if isinstance(node, nir.SumPool2d) else 1.0 / (kh * kw)
        return np.full((channels, 1, kh, kw), value), channels
    weight = np.asarray(node.weight, dtype=np.float64)
    if isinstance(node, nir.Conv1d):
        weight = weight[:, :, None, :]
    return weight, int(node.groups)


def apply_conv(node: nir.NIRNode, x: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """Cross-correlation (PyTorch convention) of a batch x (B, *in_shape) without bias."""
    import torch

    geo = conv_params(node)
    weight, groups = conv_kernel(node, in_shape[0])
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    if len(in_shape) == 2:
        xt = xt[:, :, None, :]
    y = torch.nn.functional.conv2d(
        xt,
        torch.from_numpy(weight),
        stride=geo["stride"],
        padding=geo["padding"],
        dilation=geo["dilation"],
        groups=groups,
    )
    return (y[:, :, 0, :] if len(in_shape) == 2 else y).numpy()


def linear_apply(
    name: str, node: nir.NIRNode, x: np.ndarray, in_shape: tuple[int, ...]
) -> np.ndarray:
    """A linear node without its bias applied to a batch x (B, *in_shape) in NIR layout."""
    if isinstance(node, (nir.Affine, nir.Linear)):
        weight = np.asarray(node.weight, dtype=np.float64)
        if weight.shape[1] != int(np.prod(in_shape)):
            raise MksgnError(
                f"node '{name}' ({type(node).__name__}): weight {weight.shape} does not take "
                f"an input shaped {in_shape}"
            )
        return x.reshape(len(x), -1) @ weight.T
    if isinstance(node, nir.Scale):
        return x * broadcast(node.scale, in_shape, "scale", name)
    if isinstance(node, (nir.Conv1d, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d)):
        if len(in_shape) not in (2, 3):
            raise MksgnError(
                f"node '{name}': convolution input shaped {in_shape} is not (C, [H,] W)"
            )
        return apply_conv(node, x, in_shape)
    if isinstance(node, nir.Flatten):
        return x.reshape(len(x), *linear_output_shape(name, node, in_shape))
    if isinstance(node, nir.Delay):
        return x
    raise MksgnError(f"node '{name}' of type {type(node).__name__} is not a linear node")


def linear_output_shape(name: str, node: nir.NIRNode, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Output shape of a linear node fed with `in_shape`."""
    if isinstance(node, (nir.Affine, nir.Linear)):
        return (int(np.shape(node.weight)[0]),)
    if isinstance(node, (nir.Scale, nir.Delay)):
        return in_shape
    if isinstance(node, nir.Flatten):
        return flatten_output_shape(node, tuple(in_shape))
    rank = 2 if isinstance(node, nir.Conv1d) else 3
    if len(in_shape) != rank:
        # e.g. a neuron with one broadcast value before it: its Lava population has one neuron
        raise MksgnError(
            f"node '{name}' ({type(node).__name__}) receives shape {tuple(in_shape)}, not "
            f"(channels, {rank - 1} spatial axes); the Lava converter needs one value per neuron"
        )
    if isinstance(getattr(node, "padding", None), str) and node.padding == "same":
        geometry = conv_params(node)
        reach = [d * (k - 1) for k, d in zip(geometry["kernel"], geometry["dilation"], strict=True)]
        if any(r % 2 for r in reach):
            # torch (the reference backends) pads one side more then; Lava's Conv pads evenly
            raise MksgnError(
                f"node '{name}' ({type(node).__name__}): padding 'same' with kernel "
                f"{np.shape(node.weight)[2:]} needs uneven padding, which Lava's Conv cannot do; "
                "export explicit padding"
            )
    return output_shape(name, node, tuple(in_shape))


def linear_bias(name: str, node: nir.NIRNode, shape: tuple[int, ...]) -> np.ndarray | None:
    """The bias a linear node adds, shaped like its output (None when it has none)."""
    bias = getattr(node, "bias", None)
    if bias is None or isinstance(node, nir.Linear):
        return None
    bias = np.asarray(bias, dtype=np.float64)
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        bias = bias.reshape((-1,) + (1,) * (len(shape) - 1))
    return broadcast(bias, shape, "bias", name)


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
    nodes, edges = flatten_graph(graph).without_passthrough()
    for name, node in nodes.items():
        if not isinstance(node, NEURON_TYPES + LINEAR_TYPES + (nir.Input, nir.Output)):
            raise MksgnError(
                f"node '{name}' has type {type(node).__name__}, which the Lava converter does "
                "not support (supported: Input, Output, Affine, Linear, Scale, Conv1d, Conv2d, "
                "SumPool2d, AvgPool2d, Flatten, Delay, LIF, IF, LI, I, CubaLIF, CubaLI)"
            )
        for source, target in edges:
            for end in (source, target):
                if end not in nodes:
                    raise MksgnError(f"edge ({source!r}, {target!r}) names no node '{end}'")
    inputs = [n for n, v in nodes.items() if isinstance(v, nir.Input)]
    if len(inputs) != 1:
        raise MksgnError(f"the graph needs exactly one Input node, found {len(inputs)}: {inputs}")
    input_name = inputs[0]
    input_shape = parameter_shape(input_name, nodes[input_name])
    if input_shape is None:
        raise MksgnError(f"Input node '{input_name}' has no shape")
    predecessors: dict[str, list[str]] = {n: [] for n in nodes}
    for s, t in edges:
        predecessors[t].append(s)
    cyclic = back_edges(nodes, edges, inputs)

    # Shapes of every node, propagated from the input through linear nodes.
    shapes: dict[str, tuple[int, ...]] = {input_name: input_shape}
    for name, node in nodes.items():
        if isinstance(node, NEURON_TYPES):
            shape = parameter_shape(name, node)
            if shape is None:
                raise MksgnError(
                    f"neuron node '{name}' has no shape: give its parameters as arrays"
                )
            shapes[name] = shape

    def shape_of(name: str, visiting: frozenset = frozenset()) -> tuple[int, ...]:
        if name in shapes:
            return shapes[name]
        if name in visiting:
            raise MksgnError(f"node '{name}' is on a cycle without a neuron; Lava cannot run it")
        node = nodes[name]
        preds = predecessors[name]
        if not preds:
            raise MksgnError(f"node '{name}' ({type(node).__name__}) has no incoming edge")
        in_shapes = {shape_of(p, visiting | {name}) for p in preds}
        if len(in_shapes) != 1:
            raise MksgnError(f"node '{name}' sums inputs of different shapes {sorted(in_shapes)}")
        in_shape = in_shapes.pop()
        shapes[name] = (
            in_shape if isinstance(node, nir.Output) else linear_output_shape(name, node, in_shape)
        )
        return shapes[name]

    for name in nodes:
        shape_of(name)

    def paths_into(name: str) -> list[Path]:
        """Every linear path ending at `name`, traced back to a state node."""
        result = []
        for pred in predecessors[name]:
            back = (pred, name) in cyclic
            node = nodes[pred]
            if isinstance(node, LINEAR_TYPES):
                for path in paths_into(pred):
                    delay = 0
                    if isinstance(node, nir.Delay):
                        steps = uniform(node.delay, "delay", pred) / dt
                        delay = round(steps)
                        if abs(steps - delay) > 1e-6 or not 0 <= delay <= MAX_DELAY_STEPS:
                            raise MksgnError(
                                f"node '{pred}' (Delay): delay must be a whole number of "
                                f"steps of dt={dt:g}, at most {MAX_DELAY_STEPS}"
                            )
                    result.append(
                        Path(
                            path.source,
                            [*path.nodes, pred],
                            path.delay_steps + delay,
                            path.back_edge or back,
                        )
                    )
            else:
                result.append(Path(pred, [], 0, back))
        return result

    def bias_into(name: str) -> np.ndarray | float:
        """The constant part of the summed input of `name`: upstream linear nodes' biases."""
        total: np.ndarray | float = 0.0
        for pred in predecessors[name]:
            node = nodes[pred]
            if not isinstance(node, LINEAR_TYPES):
                continue
            upstream = bias_into(pred)
            own = linear_bias(pred, node, shapes[pred])
            if np.ndim(upstream) or np.any(upstream):
                in_shape = shapes[predecessors[pred][0]]
                upstream = np.broadcast_to(upstream, in_shape)
                through = linear_apply(pred, node, upstream[None], in_shape)[0]
                total = total + through + (0.0 if own is None else own)
            elif own is not None:
                total = total + own
        return total

    def biased_predecessors(name: str) -> set[str]:
        """Linear nodes upstream of `name` (through linear nodes) that have a bias."""
        found: set[str] = set()
        for pred in predecessors[name]:
            node = nodes[pred]
            if isinstance(node, LINEAR_TYPES):
                own = linear_bias(pred, node, shapes[pred])
                if own is not None and np.any(own != 0):
                    found.add(pred)
                found |= biased_predecessors(pred)
        return found

    populations: dict[str, Population] = {}
    gains: dict[str, np.ndarray] = {}
    records: dict[str, tuple[str, str]] = {}
    outputs: list[str] = []
    for name, node in nodes.items():
        if isinstance(node, NEURON_TYPES):
            populations[name], gains[name] = neuron_population(name, node, shapes[name], dt)
            records[name] = (name, "spikes" if populations[name].spiking else "v")
    for name, node in nodes.items():
        if not isinstance(node, nir.Output):
            continue
        outputs.append(name)
        preds = predecessors[name]
        if len(preds) == 1 and preds[0] in populations:
            records[name] = records[preds[0]]
        elif len(preds) == 1 and preds[0] == input_name:
            raise MksgnError(f"Output '{name}' is fed by the Input directly: nothing to simulate")
        else:  # a readout: integrates nothing, v = this step's summed input plus bias
            readout = f"{name}.readout"
            shape = shapes[name]
            populations[readout] = Population(
                name=readout,
                nir_type="readout",
                nir_shape=shape,
                lava_shape=lava_shape(shape),
                du=1.0,
                dv=1.0,
                vth=NEVER_SPIKES,
                bias=np.zeros(lava_shape(shape)),
                spiking=False,
            )
            gains[readout] = np.ones(shape)
            records[name] = (readout, "v")
    for pop in populations.values():
        if pop.spiking:
            continue
        for s, t in edges:
            if s == pop.name and not isinstance(nodes.get(t), nir.Output):
                raise MksgnError(
                    f"node '{s}' ({pop.nir_type}) feeds '{t}': a non-spiking neuron can only feed "
                    "an Output on Lava (its LIF sends spikes, not voltages)"
                )

    synapses: list[Synapse] = []
    bias_sources: dict[str, Population] = {}
    for target, pop in populations.items():
        nir_target = target.removesuffix(".readout") if pop.nir_type == "readout" else target
        bias = np.broadcast_to(bias_into(nir_target), pop.nir_shape)
        if pop.du < 1.0 and np.any(bias != 0):
            # NIR feeds a bias through the synaptic current (I ← α·I + a·b, a rising filter),
            # while Lava's LIF adds its bias to the voltage: the bias arrives as input instead.
            source, synapse = bias_source(pop, bias * gains[target])
            bias_sources[source.name] = source
            synapses.append(synapse)
        else:
            pop.bias = pop.bias + to_lava(bias * gains[target], pop.nir_shape)
        for path in paths_into(nir_target):
            if not path.nodes:
                raise MksgnError(
                    f"edge '{path.source}' -> '{nir_target}' joins two state nodes without a "
                    "synapse; put an Affine/Conv/Scale between them"
                )
            synapses.append(
                lower_path(path, nodes, shapes, pop, gains[target], input_name, conv_lowering)
            )
    populations.update(bias_sources)
    for syn in synapses:
        if syn.source not in populations and syn.source != input_name:
            raise MksgnError(f"synapse '{syn.name}' starts at '{syn.source}', not a neuron")
    assign_depths(synapses, populations, input_name)
    return LavaPlan(
        input_name=input_name,
        input_nir_shape=input_shape,
        input_lava_shape=lava_shape(input_shape),
        populations=populations,
        synapses=synapses,
        records=records,
        outputs=tuple(outputs),
        dt=dt,
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
    source_shape = shapes[path.source]
    arriving = shapes[path.nodes[-1]] if path.nodes else source_shape
    if tuple(arriving) != tuple(target.nir_shape):
        raise MksgnError(
            f"node '{target.name}' has parameters shaped {target.nir_shape} but receives "
            f"{arriving} from '{path.source}'; the Lava converter needs one value per neuron"
        )
    graded = path.source == input_name
    weighted = [n for n in path.nodes if not isinstance(nodes[n], (nir.Flatten, nir.Delay))]
    name = "+".join(path.nodes)
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
            name=name,
            source=path.source,
            target=target.name,
            kind="conv",
            weight=lava_weight,
            graded=graded,
            conv=dict(
                input_shape=lava_shape(source_shape),
                stride=geo["stride"][::-1],
                padding=geo["padding"][::-1],
                dilation=geo["dilation"][::-1],
                groups=groups,
            ),
            extra_hops=path.delay_steps,
            back_edge=path.back_edge,
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
    return Synapse(
        name=name,
        source=path.source,
        target=target.name,
        kind="dense",
        weight=matrix,
        graded=graded,
        extra_hops=path.delay_steps,
        back_edge=path.back_edge,
    )


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
