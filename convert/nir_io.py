"""Reading NIR files and checking that a graph uses only supported nodes with consistent shapes.

NIR 1.0.8's own type inference reads a grouped convolution's input channels from
`weight.shape[1]` (C_in / groups, not C_in), so every graph with `groups > 1` fails its type
check. mksgn therefore reads with `type_check=False` and checks shapes itself (`validate_graph`),
counting grouped convolutions correctly.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import nir
import numpy as np

from mksgn.errors import MksgnError
from mksgn.isolation import ChildDied, ChildFailed, ChildTimedOut, call_in_child

# NIR graphs carry no time step: snnTorch's exporter assumes dt = 1e-4 s (tau = dt/(1-β)), and
# every mksgn exporter, converter and target takes it as the default (a graph's metadata "dt"
# overrides it where a target reads metadata).
DEFAULT_DT = 1e-4
# The node vocabulary every converter and target shares.
NEURON_TYPES: tuple[type, ...] = (nir.LIF, nir.IF, nir.LI, nir.I, nir.CubaLIF, nir.CubaLI)
SPIKING_TYPES: tuple[type, ...] = (nir.LIF, nir.IF, nir.CubaLIF)
BINARY_TYPES: tuple[type, ...] = (*SPIKING_TYPES, nir.Threshold)  # nodes that output 0 or 1
LINEAR_TYPES: tuple[type, ...] = (
    nir.Affine,
    nir.Linear,
    nir.Scale,
    nir.Conv1d,
    nir.Conv2d,
    nir.SumPool2d,
    nir.AvgPool2d,
    nir.Flatten,
    nir.Delay,
)
SUPPORTED_NODES: tuple[type, ...] = (
    nir.Input,
    nir.Output,
    *LINEAR_TYPES,
    nir.Threshold,
    *NEURON_TYPES,
    nir.NIRGraph,
)
SUPPORTED_NAMES = ", ".join(kind.__name__ for kind in SUPPORTED_NODES)

Shape = tuple[int, ...]

# Every backend allocates state per element of a node's output; a declared shape beyond this (the
# largest mksgn layer has about 10**5 neurons) is refused before anything is sized by it.
MAX_NODE_ELEMENTS = 1 << 26
# Every delay step is a Lava process per synapse and a stored activation in the reference.
MAX_DELAY_STEPS = 4096
# Stride, padding, dilation, groups, kernel size and flatten axes: small integers in any real graph.
MAX_GEOMETRY = 1 << 16

FLOAT_FIELDS: dict[type, tuple[str, ...]] = {
    nir.Affine: ("weight", "bias"),
    nir.Linear: ("weight",),
    nir.Conv1d: ("weight", "bias"),
    nir.Conv2d: ("weight", "bias"),
}
INTEGER_FIELDS: dict[type, tuple[str, ...]] = {
    nir.Conv1d: ("stride", "padding", "dilation", "groups"),
    nir.Conv2d: ("stride", "padding", "dilation", "groups"),
    nir.SumPool2d: ("kernel_size", "stride", "padding"),
    nir.AvgPool2d: ("kernel_size", "stride", "padding"),
    nir.Flatten: ("start_dim", "end_dim"),
}
WEIGHT_RANK: dict[type, int] = {nir.Affine: 2, nir.Linear: 2, nir.Conv1d: 3, nir.Conv2d: 4}
# nir.read takes 2 s for a 241 MB graph (four 4096x4096 Affine); a minute means libhdf5 loops.
NIR_READ_TIMEOUT_S = 60.0

POSITIVE_FIELDS = ("tau", "tau_syn", "tau_mem", "stride", "dilation", "groups", "kernel_size")


def read_nir(path: str | os.PathLike[str]) -> nir.NIRGraph:
    """Read a NIR HDF5 file, turning every failure into an MksgnError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MksgnError(f"NIR file {path} does not exist (write one with 'mksgn export')")
    limit = NIR_READ_TIMEOUT_S  # looked up per call: the fuzz harness lowers it
    damaged = "the file is truncated, corrupt or not written by nir.write"
    try:
        # In a child: damaged HDF5 can send libhdf5 into a loop that holds the GIL (a byte-flipped
        # file found by fuzzing) or crash it, and only another process can stop or survive that.
        graph = call_in_child(read_nir_here, path, timeout_s=limit)
    except ChildFailed as failure:
        if failure.kind == MksgnError.__name__:
            raise MksgnError(failure.message) from None
        first = (failure.message.strip().splitlines() or [failure.kind])[0]
        raise MksgnError(
            f"{path} could not be read as a NIR graph ({failure.kind}: {first}); {damaged}"
        ) from None
    except ChildTimedOut:
        raise MksgnError(
            f"reading {path} was stopped after {limit:g} s: the HDF5 library was stuck on its "
            f"data; {damaged}"
        ) from None
    except ChildDied as death:
        raise MksgnError(f"the HDF5 reader {death} while reading {path}; {damaged}") from None
    graph.metadata = plain_metadata(graph.metadata)
    if not graph.inputs or not graph.outputs:
        missing = "an Input" if not graph.inputs else "an Output"
        raise MksgnError(f"NIR graph {path} has no {missing} node; it cannot be run")
    return graph


def read_nir_here(path: Path) -> nir.NIRGraph:
    """Read a NIR file in this process, with no time limit (read_nir runs this in a child)."""
    if not h5py.is_hdf5(path):
        with open(path, "rb") as handle:
            zipped = handle.read(4) == b"PK\x03\x04"  # torch.save writes a zip archive
        if zipped:
            raise MksgnError(
                f"{path} is a PyTorch checkpoint, not a NIR graph: export it first with "
                f"'mksgn export {path} --nir MODEL.nir' ('mksgn energy' takes a checkpoint too)"
            )
        raise MksgnError(
            f"{path} is not an HDF5 file, so not a NIR graph (is it truncated or another format?)"
        )
    # NIR computes conv output shapes from the file's strides; a stride of 0 made numpy print
    # a divide-by-zero RuntimeWarning ahead of the Error line (the OverflowError follows).
    with np.errstate(all="ignore"):
        graph = nir.read(path, type_check=False)
    if not isinstance(graph, nir.NIRGraph):
        raise MksgnError(f"{path} holds a single {type(graph).__name__} node, not a NIR graph")
    return graph


def plain_metadata(metadata: object) -> dict:
    """Metadata as h5py returns it (bytes arrays for lists of strings) turned back into lists,
    strings and numbers."""
    if not isinstance(metadata, dict):
        return {}

    def plain(value: object) -> object:
        if isinstance(value, bytes):
            return value.decode("utf8")
        if isinstance(value, np.ndarray):
            if value.dtype.kind in "OSU":
                return [plain(item) for item in value.tolist()]
            return value.item() if value.ndim == 0 else value.tolist()
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        return value

    return {key: plain(value) for key, value in metadata.items()}


def node_error(name: str, node: nir.NIRNode, problem: str) -> MksgnError:
    """An error naming a node and its type."""
    # One line however a value from the file prints (numpy spreads arrays over many lines).
    return MksgnError(f"NIR node {name!r} ({type(node).__name__}): {' '.join(problem.split())}")


def check_parameters(name: str, node: nir.NIRNode) -> None:
    """Parameter values a backend can use: finite real numbers, small positive integers for the
    geometry, weights of the right rank; raises naming the node and the field."""
    fields = NEURON_FIELDS.get(type(node), ()) + FLOAT_FIELDS.get(type(node), ())
    for field in fields:
        value = getattr(node, field, None)
        if isinstance(value, str) or value is None:
            raise node_error(name, node, f"parameter {field} is {value!r}, expected numbers")
        array = np.asarray(value)
        if array.dtype.kind not in "biuf" or not np.all(np.isfinite(array)):
            raise node_error(
                name, node, f"parameter {field} must hold finite real numbers ({array.dtype})"
            )
        if field in POSITIVE_FIELDS and not np.all(array > 0):
            raise node_error(name, node, f"parameter {field} must be positive")
        if field == "delay" and not np.all(array >= 0):
            raise node_error(name, node, "parameter delay must not be negative")
    if type(node) in WEIGHT_RANK:
        weight = np.asarray(node.weight)
        rank = WEIGHT_RANK[type(node)]
        if weight.ndim != rank or weight.size == 0:
            raise node_error(
                name, node, f"weight shaped {weight.shape} must have {rank} non-empty axes"
            )
        bias = getattr(node, "bias", None)
        if bias is not None and np.size(bias) not in (1, weight.shape[0]):
            raise node_error(
                name, node, f"bias of {np.size(bias)} values for {weight.shape[0]} outputs"
            )
    for field in INTEGER_FIELDS.get(type(node), ()):
        value = getattr(node, field, None)
        if isinstance(value, str) and field == "padding" and value in ("same", "valid"):
            continue
        array = np.asarray(value) if value is not None else np.zeros(0)
        numeric = array.dtype.kind in "biuf" and array.size in (1, 2) and array.ndim <= 1
        if not numeric or not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            got = (
                f"an array shaped {array.shape} ({array.dtype})" if array.size > 2 else repr(value)
            )
            raise node_error(name, node, f"{field} must be one or two integers, got {got}")
        lowest = 1 if field in POSITIVE_FIELDS else (-MAX_GEOMETRY if "dim" in field else 0)
        if not np.all((array >= lowest) & (array <= MAX_GEOMETRY)):
            raise node_error(
                name, node, f"{field} {array.tolist()} is outside {lowest}..{MAX_GEOMETRY}"
            )
        # A conv's geometry has one value, or one per spatial axis (the long fuzz run reached
        # broadcast and index errors with two paddings on a Conv1d or two groups).
        if type(node) in (nir.Conv1d, nir.Conv2d):
            axes = 1 if field == "groups" else np.asarray(node.weight).ndim - 2
            if array.size not in (1, axes):
                raise node_error(
                    name, node, f"{field} has {array.size} values; it takes 1 or {axes}"
                )


def check_shape(name: str, node: nir.NIRNode, shape: Shape) -> Shape:
    """A node's (declared or computed) shape as Python ints: positive sizes, at most
    MAX_NODE_ELEMENTS."""
    shape = tuple(int(size) for size in shape)
    if not shape or any(size < 1 for size in shape) or math.prod(shape) > MAX_NODE_ELEMENTS:
        raise node_error(
            name,
            node,
            f"shape {shape} is empty or has more than {MAX_NODE_ELEMENTS} elements; mksgn runs "
            "graphs whose every node has at most that many",
        )
    return shape


def as_pair(value: object) -> tuple[int, int]:
    """A stride/padding/kernel value given as an int or a pair, as a pair of ints."""
    array = np.atleast_1d(np.asarray(value)).astype(int)
    return (int(array[0]), int(array[-1])) if array.size else (0, 0)


def conv_length(length: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution along one axis (torch's formula)."""
    return (length + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_output_shape(name: str, node: nir.NIRNode, shape: Shape) -> Shape:
    """Output shape of a Conv1d/Conv2d for an input shape (C_in, *spatial)."""
    weight = np.asarray(node.weight)
    spatial = weight.ndim - 2
    if len(shape) != spatial + 1:
        raise node_error(name, node, f"expects (channels, {spatial} spatial axes), got {shape}")
    groups = int(node.groups)
    if shape[0] != weight.shape[1] * groups:
        raise node_error(
            name,
            node,
            f"expects {weight.shape[1] * groups} input channels (weight {weight.shape}, groups "
            f"{groups}) but receives {shape[0]}",
        )
    if isinstance(node.padding, str):
        if node.padding == "same":
            if np.any(np.asarray(node.stride) != 1):
                raise node_error(name, node, "padding 'same' needs stride 1 (as in torch)")
            return (weight.shape[0], *shape[1:])
        padding = (0,) * spatial
    else:
        padding = np.broadcast_to(np.asarray(node.padding).astype(int), (spatial,))
    stride = np.broadcast_to(np.asarray(node.stride).astype(int), (spatial,))
    dilation = np.broadcast_to(np.asarray(node.dilation).astype(int), (spatial,))
    out = [
        conv_length(
            shape[1 + axis], weight.shape[2 + axis], stride[axis], padding[axis], dilation[axis]
        )
        for axis in range(spatial)
    ]
    if min(out) < 1:
        raise node_error(name, node, f"input {shape} is smaller than the kernel {weight.shape[2:]}")
    return (weight.shape[0], *out)


def pool_output_shape(name: str, node: nir.NIRNode, shape: Shape) -> Shape:
    """Output shape of SumPool2d/AvgPool2d for (C, H, W)."""
    if len(shape) != 3:
        raise node_error(name, node, f"expects (channels, height, width), got {shape}")
    kernel, stride, padding = as_pair(node.kernel_size), as_pair(node.stride), as_pair(node.padding)
    out = [conv_length(shape[1 + a], kernel[a], stride[a], padding[a], 1) for a in range(2)]
    if min(out) < 1:
        raise node_error(name, node, f"input {shape} is smaller than the kernel {kernel}")
    return (shape[0], *out)


def flatten_output_shape(node: nir.Flatten, shape: Shape) -> Shape:
    """Flatten over axes start_dim..end_dim of the shape without batch axis (NIR convention)."""
    rank = len(shape)
    start = node.start_dim % rank if rank else 0
    end = node.end_dim % rank if rank else 0
    merged = int(np.prod(shape[start : end + 1]))
    return (*shape[:start], merged, *shape[end + 1 :])


def broadcast_parameter(name: str, node: nir.NIRNode, shape: Shape, *fields: str) -> Shape:
    """Check that neuron or elementwise parameters broadcast to the incoming shape."""
    for field in fields:
        value = np.asarray(getattr(node, field))
        try:
            result = np.broadcast_shapes(value.shape, shape)
        except ValueError:
            result = None
        if result != tuple(shape):
            raise node_error(
                name, node, f"parameter {field} shaped {value.shape} does not fit input {shape}"
            )
    return shape


NEURON_FIELDS: dict[type, tuple[str, ...]] = {
    nir.I: ("r",),
    nir.IF: ("r", "v_threshold", "v_reset"),
    nir.LI: ("tau", "r", "v_leak"),
    nir.LIF: ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    nir.CubaLI: ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
    nir.CubaLIF: ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    nir.Delay: ("delay",),
    nir.Threshold: ("threshold",),
    nir.Scale: ("scale",),
}


def output_shape(name: str, node: nir.NIRNode, shape: Shape) -> Shape:
    """The shape a supported node produces from an input of `shape` (raises on a mismatch)."""
    if isinstance(node, (nir.Input, nir.Output)):
        declared = tuple(int(n) for n in np.atleast_1d(node_shape(node)))
        if declared != tuple(shape):
            raise node_error(name, node, f"declares shape {declared} but receives {shape}")
        return shape
    if isinstance(node, (nir.Affine, nir.Linear)):
        weight = np.asarray(node.weight)
        if not shape or shape[-1] != weight.shape[-1]:
            raise node_error(
                name, node, f"weight {weight.shape} needs {weight.shape[-1]} inputs, got {shape}"
            )
        return (*shape[:-1], weight.shape[-2])
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        return conv_output_shape(name, node, shape)
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        return pool_output_shape(name, node, shape)
    if isinstance(node, nir.Flatten):
        return flatten_output_shape(node, shape)
    if type(node) in NEURON_FIELDS:
        return broadcast_parameter(name, node, shape, *NEURON_FIELDS[type(node)])
    raise node_error(name, node, f"unsupported node type; supported: {SUPPORTED_NAMES}")


def node_shape(node: nir.Input | nir.Output) -> np.ndarray:
    """The declared shape of an Input or Output node."""
    types = node.input_type if isinstance(node, nir.Input) else node.output_type
    key = "input" if isinstance(node, nir.Input) else "output"
    shape = np.atleast_1d(np.asarray(types.get(key) if isinstance(types, dict) else None))
    if shape.ndim != 1 or shape.dtype.kind not in "iuf" or not np.all(np.isfinite(shape)):
        raise MksgnError(
            f"NIR {type(node).__name__} node declares a shape that is not a list of integers "
            f"({shape.dtype}, {shape.ndim} dimensions)"
        )
    if not np.all(shape == np.round(shape)) or np.any(np.abs(shape) > MAX_NODE_ELEMENTS):
        raise MksgnError(
            f"NIR {type(node).__name__} node declares the shape {shape.tolist()}: sizes must be "
            f"whole numbers up to {MAX_NODE_ELEMENTS}"
        )
    return shape.astype(np.int64)


def input_shape(graph: nir.NIRGraph) -> Shape:
    """The shape of the graph's single Input node (per time step, without batch)."""
    inputs = graph.inputs
    if len(inputs) != 1:
        raise MksgnError(
            f"the graph has {len(inputs)} Input nodes ({', '.join(inputs)}); mksgn runs graphs "
            "with exactly one"
        )
    return tuple(int(n) for n in np.atleast_1d(node_shape(next(iter(inputs.values())))))


def validate_graph(graph: nir.NIRGraph, where: str = "graph") -> dict[str, Shape]:
    """Check node types, edge endpoints and shapes; return each node's output shape.

    Shapes propagate from the Input nodes; a node whose shape is undetermined (only fed
    through a cycle) is checked once its sources are known. The nodes of a nested graph are
    included under the names flatten_graph gives them ('subgraph.node').
    """
    if not isinstance(graph, nir.NIRGraph):
        raise MksgnError(f"{where} is a {type(graph).__name__}, not a NIR graph")
    for name, node in graph.nodes.items():
        if not isinstance(node, SUPPORTED_NODES):
            raise node_error(name, node, f"unsupported node type; supported: {SUPPORTED_NAMES}")
        check_parameters(name, node)
    for source, target in graph.edges:
        for end in (source, target):
            if end not in graph.nodes:
                raise MksgnError(
                    f"{where}: edge ({source!r}, {target!r}) names {end!r}, which is not a node"
                )
    if not graph.inputs or not graph.outputs:
        missing = "Input" if not graph.inputs else "Output"
        raise MksgnError(f"{where} has no {missing} node; it cannot be run")
    incoming: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for source, target in graph.edges:
        incoming[target].append(source)
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Input) and incoming[name]:
            raise node_error(name, node, "an Input node cannot receive edges")
        if not isinstance(node, nir.Input) and not incoming[name]:
            raise node_error(name, node, "receives no edge, so it has no input")
    shapes: dict[str, Shape] = {}
    for name, node in graph.inputs.items():
        shapes[name] = check_shape(name, node, tuple(int(n) for n in node_shape(node)))
    progress = True
    while progress:
        progress = False
        for name, node in graph.nodes.items():
            if name in shapes:
                continue
            known = [shapes[s] for s in incoming[name] if s in shapes]
            if not known:
                continue
            shape = known[0]
            if isinstance(node, nir.NIRGraph):
                inner = subgraph_shapes(name, node, shape, where)
                shapes.update({f"{name}.{inner_name}": s for inner_name, s in inner.items()})
                shape = inner[next(iter(node.outputs))]
            else:
                shape = output_shape(name, node, shape)
            shapes[name] = check_shape(name, node, shape)
            progress = True
    for source, target in graph.edges:
        if source in shapes and target in shapes:
            expected = edge_input_shape(graph, target, shapes)
            if shapes[source] != expected:
                node = graph.nodes[target]
                raise node_error(
                    target,
                    node,
                    f"edge from {source!r} brings shape {shapes[source]} but the node's other "
                    f"inputs are {expected}; summed inputs must have one shape",
                )
    unreached = [name for name in graph.nodes if name not in shapes]
    if unreached:
        raise MksgnError(f"{where}: nodes {unreached} are not connected to an Input node")
    return shapes


def edge_input_shape(graph: nir.NIRGraph, target: str, shapes: dict[str, Shape]) -> Shape:
    """The shape of the first known source feeding `target` (all sources must agree)."""
    for source, end in graph.edges:
        if end == target and source in shapes:
            return shapes[source]
    raise MksgnError(f"node {target!r} has no known input shape")


def subgraph_shapes(name: str, node: nir.NIRGraph, shape: Shape, where: str) -> dict[str, Shape]:
    """Validate a nested graph fed with `shape`; return the shapes of its nodes."""
    inner = validate_graph(node, f"subgraph {name!r} of {where}")
    inner_inputs = [inner[n] for n in node.inputs]
    if len(inner_inputs) != 1:
        raise node_error(
            name, node, f"a nested graph needs exactly one Input, has {len(inner_inputs)}"
        )
    if inner_inputs[0] != shape:
        raise node_error(name, node, f"its Input expects {inner_inputs[0]} but receives {shape}")
    if len(node.outputs) != 1:
        raise node_error(
            name, node, f"a nested graph needs exactly one Output, has {len(node.outputs)}"
        )
    return inner
