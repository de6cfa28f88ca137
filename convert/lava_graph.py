"""Lower a NIR graph to a Lava process-graph plan (pure NumPy) and build the Lava processes from it.

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

from mksgn.convert.loihi2 import GRADED_MESSAGE_BITS
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

NEVER_SPIKES = 1e30  # threshold of a non-spiking (LI, I, readout) population in floating point
# The nir_type of a population that stands for no NIR node: it spikes on every step so that a
# Dense from it adds a constant to a CubaLIF/CubaLI's synaptic current (NIR's bias semantics).
BIAS_SOURCE = "bias source"
MAX_DENSE_ENTRIES = 50_000_000  # a composed path bigger than this must stay a single Lava Conv
MAX_SPARSE_ENTRIES = 200_000_000  # ~2.4 GB per copy of the csr matrix; bigger convs stay Lava Conv
CONV_LOWERINGS = ("auto", "conv", "sparse")
# Cost of one Lava step per synapse process on one CPU core. Lava 0.10's Conv model runs scipy's
# convolve2d once per (output, input) channel pair per step (its torch path is disabled upstream);
# each call cost up to ~10 µs here. Lava's Sparse model selects the spiking columns of its csr
# matrix and sums them: ~3 ns per stored nonzero measured on a 82 M-entry matrix. Dense is one
# matvec.
SECONDS_PER_CONV_CHANNEL_PAIR = 1e-5
SECONDS_PER_SPARSE_NONZERO = 5e-9
SECONDS_PER_DENSE_WEIGHT = 2e-9


@dataclasses.dataclass
class Population:
    """One Lava LIF population: the image of a NIR neuron node (or of a readout)."""

    name: str  # the NIR node it stands for ("<output>.readout" for a readout)
    nir_type: str
    nir_shape: tuple[int, ...]
    lava_shape: tuple[int, ...]
    du: float
    dv: float
    vth: float
    bias: np.ndarray  # lava layout, in voltage units per step
    spiking: bool
    depth: int = 0
    max_abs_input: float = 0.0  # bound on |a_in| per step (fixed-point range check)
    max_negative_input: float = 0.0  # bound on -a_in per step: what drives v down


@dataclasses.dataclass
class Synapse:
    """One Lava Dense, Conv or Sparse process from a source population (or the input) to a target."""

    name: str  # NIR nodes of the path joined with '+'
    source: str
    target: str
    kind: str  # "dense" or "conv"
    weight: np.ndarray  # dense: (N_out, N_in) lava flat order; conv: (C_out, kw, kh, C_in/groups)
    graded: bool  # source sends values, not spikes
    conv: dict[str, object] | None = None  # input_shape, stride, padding, dilation, groups
    extra_hops: int = 0  # identity hops appended (depth equalisation, NIR Delay)
    back_edge: bool = False
    # A conv run as a Lava Sparse matrix (built from `weight` and `conv` by conv_sparse_matrix)
    # instead of a Lava Conv; `nonzeros` is that matrix's number of stored entries.
    sparse: bool = False
    nonzeros: int = 0

    @property
    def lava_process(self) -> str:
        """The Lava process class this synapse becomes."""
        if self.kind == "dense":
            return "Dense"
        return "Sparse" if self.sparse else "Conv"

    def step_seconds(self) -> float:
        """Estimated wall seconds its Lava process model needs for one step."""
        if self.kind == "dense":
            return self.weight.size * SECONDS_PER_DENSE_WEIGHT
        if self.sparse:
            return self.nonzeros * SECONDS_PER_SPARSE_NONZERO
        out_channels, *_, in_channels_per_group = self.weight.shape
        return out_channels * in_channels_per_group * SECONDS_PER_CONV_CHANNEL_PAIR


@dataclasses.dataclass
class LavaPlan:
    """A NIR graph lowered to Lava populations and synapses, with pipeline depths."""

    input_name: str
    input_nir_shape: tuple[int, ...]
    input_lava_shape: tuple[int, ...]
    populations: dict[str, Population]
    synapses: list[Synapse]
    records: dict[str, tuple[str, str]]  # NIR node -> (population, "spikes" | "v")
    outputs: tuple[str, ...]
    dt: float

    @property
    def depth(self) -> int:
        """The pipeline depth: Lava steps between an input step and the deepest population."""
        return max((p.depth for p in self.populations.values()), default=0)


# ---------------------------------------------------------------------------- layouts


def lava_shape(nir_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Lava's (W, H, C) layout of a NIR (C,), (C, L) or (C, H, W) shape."""
    if len(nir_shape) == 1:
        return tuple(nir_shape)
    if len(nir_shape) == 2:
        return (nir_shape[1], 1, nir_shape[0])
    if len(nir_shape) == 3:
        return (nir_shape[2], nir_shape[1], nir_shape[0])
    raise MksgnError(f"tensor shape {nir_shape} has no Lava layout: use at most 3 dimensions")


def to_lava(array: np.ndarray, nir_shape: tuple[int, ...]) -> np.ndarray:
    """Reorder trailing NIR-layout axes (C[, H], W) of `array` into Lava's (W, H, C)."""
    lead = array.shape[: array.ndim - len(nir_shape)]
    n = len(lead)
    if len(nir_shape) == 1:
        return array
    if len(nir_shape) == 2:
        return np.swapaxes(array, n, n + 1)[..., None, :].reshape(lead + lava_shape(nir_shape))
    return np.moveaxis(array, [n, n + 1, n + 2], [n + 2, n + 1, n])


def from_lava(array: np.ndarray, nir_shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of `to_lava`."""
    lead = array.shape[: array.ndim - len(lava_shape(nir_shape))]
    n = len(lead)
    if len(nir_shape) == 1:
        return array
    if len(nir_shape) == 2:
        return np.swapaxes(array[..., 0, :], n, n + 1)
    return np.moveaxis(array, [n + 2, n + 1, n], [n, n + 1, n + 2])


def lava_order(nir_shape: tuple[int, ...]) -> np.ndarray:
    """For each Lava flat index, the NIR flat index of the same element."""
    index = np.arange(int(np.prod(nir_shape))).reshape(nir_shape)
    return to_lava(index, nir_shape).ravel()


# ---------------------------------------------------------------------------- graph helpers


def node_shape(name: str, node: nir.NIRNode) -> tuple[int, ...] | None:
    """The output shape of a node, from its type or its parameters."""
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
    input_shape = node_shape(input_name, nodes[input_name])
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
            shape = node_shape(name, node)
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


def conv_taps(
    kernel: np.ndarray, conv: dict, output_shape: tuple[int, ...]
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per kernel tap, in order of increasing input position: the tap's (C_out, C_in/groups)
    weights and the Lava flat positions (output, input) it connects, padding left out."""
    out_w, out_h, _ = output_shape
    in_w, in_h, _ = conv["input_shape"]
    stride_w, stride_h = conv["stride"]
    pad_w, pad_h = conv["padding"]
    dil_w, dil_h = conv["dilation"]
    kernel_w, kernel_h = kernel.shape[1:3]
    taps = []
    # The Lava kernel is flipped: Lava tap (kernel_w-1-j, kernel_h-1-i) is cross-correlation tap
    # (i, j), which reads input column w'·stride - pad + j·dilation.
    for j in range(kernel_w):
        in_cols = np.arange(out_w) * stride_w - pad_w + j * dil_w
        for i in range(kernel_h):
            in_rows = np.arange(out_h) * stride_h - pad_h + i * dil_h
            col_ok = (in_cols >= 0) & (in_cols < in_w)
            row_ok = (in_rows >= 0) & (in_rows < in_h)
            out_pos = (np.flatnonzero(col_ok)[:, None] * out_h + np.flatnonzero(row_ok)).ravel()
            in_pos = (in_cols[col_ok][:, None] * in_h + in_rows[row_ok]).ravel()
            taps.append((kernel[:, kernel_w - 1 - j, kernel_h - 1 - i, :], out_pos, in_pos))
    return taps


def conv_nonzeros(kernel: np.ndarray, conv: dict, output_shape: tuple[int, ...]) -> int:
    """Stored entries of `conv_sparse_matrix` for this kernel, without building it."""
    return sum(
        int(np.count_nonzero(tap)) * len(out_pos)
        for tap, out_pos, _ in conv_taps(kernel, conv, output_shape)
    )


def conv_sparse_matrix(kernel: np.ndarray, conv: dict, output_shape: tuple[int, ...]) -> object:
    """The scipy csr (N_out, N_in) matrix, in Lava flat order, of a Lava-layout conv kernel
    (C_out, kw, kh, C_in/groups) with geometry `conv`; zero weights are not stored.

    Built from indices (no N_out x N_in intermediate); each row's columns come out sorted, i.e.
    in the order Lava's flat input is laid out."""
    import scipy.sparse

    in_channels = int(conv["input_shape"][2])
    out_channels = int(output_shape[2])
    per_group_out = out_channels // int(conv["groups"])
    per_group_in = kernel.shape[3]
    rows, cols, values = [], [], []
    for tap, out_pos, in_pos in conv_taps(kernel, conv, output_shape):
        out_channel, local_in = np.nonzero(tap)
        in_channel = (out_channel // per_group_out) * per_group_in + local_in
        rows.append((out_pos[:, None] * out_channels + out_channel).astype(np.int32).ravel())
        cols.append((in_pos[:, None] * in_channels + in_channel).astype(np.int32).ravel())
        values.append(np.broadcast_to(tap[out_channel, local_in], (len(out_pos), len(in_channel))))
    shape = (int(np.prod(output_shape)), int(np.prod(conv["input_shape"])))
    data = np.concatenate([v.ravel() for v in values]) if values else np.zeros(0, kernel.dtype)
    matrix = scipy.sparse.coo_matrix(
        (data, (np.concatenate(rows), np.concatenate(cols))), shape=shape
    ).tocsr()
    matrix.sort_indices()  # a no-op when the taps came in order; Lava sums in stored order
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


def input_bound(plan: LavaPlan, input_abs_max: float = 1.0) -> None:
    """Fill each population's bound on |input current| per step (for fixed-point ranges)."""
    for pop in plan.populations.values():
        pop.max_abs_input = pop.max_negative_input = 0.0
    for syn in plan.synapses:
        scale = input_abs_max if syn.graded else 1.0
        target = plan.populations[syn.target]
        target.max_abs_input += max_row_sum(syn, syn.weight) * scale
        # Spikes are 0 or 1, so only negative weights pull down; a graded input may be negative.
        negative = syn.weight if syn.graded else np.minimum(syn.weight, 0.0)
        target.max_negative_input += max_row_sum(syn, negative) * scale


def max_row_sum(syn: Synapse, weight: np.ndarray) -> float:
    """Largest sum of |weights| into one target neuron, for `weight` laid out like syn.weight."""
    if syn.kind == "dense":
        return float(np.abs(weight).sum(axis=1).max(initial=0))
    # A conv's kernel row sum bounds every output, padded or not (Conv and Sparse alike).
    return float(np.abs(weight).reshape(weight.shape[0], -1).sum(axis=1).max(initial=0))


# ---------------------------------------------------------------------------- Lava objects


def build_lava(
    plan: LavaPlan,
    input_data: np.ndarray,
    reset_interval: int,
    fixed: object | None = None,
    batch: int = 1,
) -> tuple[object, dict[str, object]]:
    """Create the Lava processes for `plan` fed by a RingBuffer over `input_data` (lava layout,
    time last). Returns (the source process, population name -> LIF process).

    With `batch` > 1 the network holds `batch` copies side by side, so that one Lava step (and
    its per-process overhead) serves `batch` samples: every population is flat, sample b in the
    b-th block of `batch` equal blocks (input_data (batch * input size, time) likewise), and every
    synapse is a Sparse process with a block-diagonal matrix (batched_matrix)."""
    import scipy.sparse
    from lava.proc.conv.process import Conv
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIFReset
    from lava.proc.sparse.process import Sparse

    source = RingBuffer(data=input_data)
    lifs: dict[str, object] = {}
    for name, pop in plan.populations.items():
        params: dict[str, object]
        if fixed is None:
            params = dict(du=pop.du, dv=pop.dv, vth=pop.vth, bias_mant=pop.bias, bias_exp=0)
        else:
            params = fixed.populations[name].lava_params()
        shape = pop.lava_shape
        if batch > 1:
            shape = (batch * int(np.prod(shape)),)
            bias = np.broadcast_to(params["bias_mant"], pop.lava_shape)
            params["bias_mant"] = np.tile(bias.ravel(), batch)
        lifs[name] = LIFReset(
            shape=shape,
            reset_interval=reset_interval,
            reset_offset=(pop.depth + 1) % reset_interval,
            name=name,
            **params,
        )
    for index, syn in enumerate(plan.synapses):
        out_port = source.s_out if syn.source == plan.input_name else lifs[syn.source].s_out
        target = lifs[syn.target]
        bits = GRADED_MESSAGE_BITS if syn.graded else 0
        qsyn = None if fixed is None else fixed.synapses[index]
        weight = syn.weight if qsyn is None else qsyn.weight
        if syn.kind == "conv" and not syn.sparse and batch == 1:
            kwargs = dict(syn.conv)
            if qsyn is not None:
                kwargs["weight_exp"] = qsyn.weight_exp
            proc = Conv(weight=weight, num_message_bits=bits, name=f"syn{index}", **kwargs)
            out_port.connect(proc.s_in)
            last = proc.a_out
            last_shape = proc.a_out.shape
        else:
            exp = 0 if qsyn is None else qsyn.weight_exp
            proc = matrix_synapse(
                syn, weight, exp, bits, f"syn{index}", plan, qsyn is not None, batch
            )
            flat(out_port).connect(proc.s_in)
            last = proc.a_out
            last_shape = proc.a_out.shape
            if qsyn is not None and qsyn.residual is not None:
                # A second synapse with a finer exponent beside it; Lava sums both into a_in.
                residual = matrix_synapse(
                    syn,
                    qsyn.residual,
                    qsyn.residual_exp,
                    bits,
                    f"syn{index}.residual",
                    plan,
                    True,
                    batch,
                )
                flat(out_port).connect(residual.s_in)
                port = residual.a_out
                if tuple(port.shape) != tuple(target.a_in.shape):
                    port = port.reshape(tuple(target.a_in.shape))
                port.connect(target.a_in)
        for hop in range(syn.extra_hops):
            size = int(np.prod(last_shape))
            # A sparse identity: a dense one would hold size² weights and cost size² per step.
            identity = scipy.sparse.identity(
                size, dtype=np.int32 if fixed is not None else np.float64, format="csr"
            )
            delay = Sparse(
                weights=identity, num_message_bits=GRADED_MESSAGE_BITS, name=f"syn{index}.hop{hop}"
            )
            flat(last).connect(delay.s_in)
            last, last_shape = delay.a_out, delay.a_out.shape
        if tuple(last_shape) != tuple(target.a_in.shape):
            last = last.reshape(tuple(target.a_in.shape))
        last.connect(target.a_in)
    return source, lifs


def flat(port: object) -> object:
    """A Lava port as the 1-D port a Dense or Sparse process connects to."""
    return port.flatten() if len(port.shape) > 1 else port


def matrix_synapse(
    syn: Synapse,
    weight: np.ndarray,
    exp: int,
    bits: int,
    name: str,
    plan: LavaPlan,
    fixed: bool,
    batch: int = 1,
) -> object:
    """A Lava Dense (or Sparse, for a conv lowered to a matrix or a batched network) process for
    `weight`."""
    from lava.proc.dense.process import Dense
    from lava.proc.sparse.process import Sparse

    kwargs = dict(weight_exp=exp) if fixed else {}
    if not syn.sparse and batch == 1:
        return Dense(weights=weight, num_message_bits=bits, name=name, **kwargs)
    matrix = batched_matrix(synapse_matrix(syn, weight, plan), batch)
    return Sparse(weights=matrix, num_message_bits=bits, name=name, **kwargs)


def synapse_matrix(syn: Synapse, weight: np.ndarray, plan: LavaPlan) -> object:
    """`weight` (laid out like syn.weight) as a scipy csr (N_out, N_in) in Lava flat order."""
    import scipy.sparse

    if syn.kind == "dense":
        return scipy.sparse.csr_matrix(weight)
    return conv_sparse_matrix(weight, syn.conv, plan.populations[syn.target].lava_shape)


def batched_matrix(matrix: object, batch: int) -> object:
    """`batch` copies of a csr matrix on the diagonal: sample b's inputs reach only its outputs."""
    import scipy.sparse

    if batch == 1:
        return matrix
    return scipy.sparse.block_diag([matrix] * batch, format="csr", dtype=matrix.dtype)


def nir_node_kinds(plan: LavaPlan) -> dict[str, dict[str, object]]:
    """A JSON-able description of the plan for manifests."""
    description: dict[str, dict[str, object]] = {}
    for name, pop in plan.populations.items():
        description[name] = dict(
            lava_process="LIFReset",
            nir_type=pop.nir_type,
            nir_shape=list(pop.nir_shape),
            lava_shape=list(pop.lava_shape),
            depth=pop.depth,
            du=pop.du,
            dv=pop.dv,
            vth=None if not pop.spiking else pop.vth,
        )
    for index, syn in enumerate(plan.synapses):
        description[f"synapse{index}:{syn.name}"] = dict(
            lava_process=syn.lava_process,
            source=syn.source,
            target=syn.target,
            weight_shape=list(syn.weight.shape),
            **({"nonzeros": syn.nonzeros} if syn.sparse else {}),
            graded_input=syn.graded,
            identity_hops=syn.extra_hops,
            recurrent=syn.back_edge,
        )
    return description
