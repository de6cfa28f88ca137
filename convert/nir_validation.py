"""Checking a NIR graph before anything runs it: parameter values a backend can use, every
node's shape inferred from the Input (grouped convolutions counted right), edges that join
nodes of one shape; `validate_graph` returns the shapes."""

from __future__ import annotations

import math

import nir
import numpy as np

from mksgn.convert.nir_nodes import (
    FLOAT_FIELDS,
    INTEGER_FIELDS,
    MAX_GEOMETRY,
    MAX_NODE_ELEMENTS,
    NEURON_FIELDS,
    POSITIVE_FIELDS,
    SUPPORTED_NAMES,
    SUPPORTED_NODES,
    WEIGHT_RANK,
    Shape,
)
from mksgn.errors import MksgnError


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
