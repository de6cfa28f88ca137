"""Lowering of a trained Base-SGN / MK-SGN to a NIR graph, and writing it (checked by re-reading).

The lowering contract every target relies on (see docs/nir-semantics.md):
signals are (channels, frames) with channel index = node·C + channel (node-major); every synapse
is a Conv1d over frames (graph conv: kernel 1 with weight Σ_k kron(A_kᵀ, W_k); temporal conv:
groups = nodes); neurons are LIF in snnTorch's convention (dt = 1e-4, tau = dt/(1−β), r = tau/dt);
the readout is Flatten then Affine (the mean over frames and nodes folded into the weight).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import nir
import numpy as np
import torch

from mksgn import __version__
from mksgn.atomic import atomic_path
from mksgn.convert.folding import (
    FoldedGraphConv,
    FoldedSpikingLayer,
    FoldedTemporalConv,
    fold_readout,
    fold_student,
)
from mksgn.convert.nir_io import read_nir
from mksgn.convert.nir_nodes import DEFAULT_DT
from mksgn.convert.nir_validation import validate_graph
from mksgn.errors import MksgnError
from mksgn.train.models.layers import GraphConv, SpikingLayer, TemporalConv
from mksgn.train.models.sgn import BaseSGN, SpikingBlock

COORDS = 3


def check_exportable(model: torch.nn.Module) -> None:
    """Refuse models whose layers NIR cannot express, naming the layer."""
    if not isinstance(model, BaseSGN):
        raise MksgnError(
            f"a {type(model).__name__} is not a spiking student; only Base-SGN and MK-SGN export "
            "to NIR (export the GCN teacher with --onnx)"
        )
    if not isinstance(model.readout, torch.nn.Linear):
        raise MksgnError(
            f"layer 'readout' is a {type(model.readout).__name__}; only a Linear readout lowers to "
            "NIR Affine"
        )
    for name, module in model.named_modules():
        if isinstance(module, SpikingBlock) and not isinstance(
            module.synapse, (GraphConv, TemporalConv)
        ):
            raise MksgnError(
                f"layer '{name}.synapse' is a {type(module.synapse).__name__}, which has no NIR "
                "lowering; deployable synapses are graph convolutions and temporal convolutions"
            )
        if isinstance(module, SpikingLayer):
            mechanism = getattr(module.neuron, "reset_mechanism", "zero")
            if mechanism != "zero":
                raise MksgnError(
                    f"layer {name!r} resets its neurons by {mechanism!r}; NIR can only express "
                    "reset to a value (reset_mechanism='zero')"
                )


def node_major(weight: np.ndarray, adjacency: np.ndarray) -> np.ndarray:
    """Σ_k kron(A_kᵀ, W_k): a graph convolution as one matrix on node-major channels."""
    return sum(np.kron(a.T, w) for a, w in zip(adjacency, weight, strict=True))


def synapse_conv(
    synapse: FoldedGraphConv | FoldedTemporalConv,
    nodes: int,
    frames: int,
    in_channels: slice,
    total_in: int,
    with_bias: bool,
) -> nir.Conv1d:
    """The Conv1d of a folded synapse restricted to the input channels `in_channels` of `total_in`
    (the slice a branch or modality feeds)."""
    bias = synapse.bias.double().numpy()
    bias = (np.tile(bias, nodes) if with_bias else np.zeros(nodes * bias.size)).astype(np.float32)
    if isinstance(synapse, FoldedGraphConv):
        weight = synapse.weight.double().numpy()  # (K, C_out, C_in of the slice)
        partitions, out_channels, _ = weight.shape
        embedded = np.zeros((partitions, out_channels, total_in))
        embedded[:, :, in_channels] = weight
        matrix = node_major(embedded, synapse.adjacency.double().numpy())
        return nir.Conv1d(
            input_shape=frames,
            weight=matrix[:, :, None].astype(np.float32),
            stride=1,
            padding=0,
            dilation=1,
            groups=1,
            bias=bias,
        )
    if isinstance(synapse, FoldedTemporalConv):
        weight = synapse.weight.double().numpy()[:, in_channels, :, 0]  # (C_out, C_in, k)
        return nir.Conv1d(
            input_shape=frames,
            weight=np.tile(weight, (nodes, 1, 1)).astype(np.float32),
            stride=int(synapse.stride),
            padding=int(synapse.padding),
            dilation=1,
            groups=nodes,
            bias=bias,
        )
    raise MksgnError(f"cannot lower a synapse of type {type(synapse).__name__} to NIR")


def neuron_node(layer: FoldedSpikingLayer, shape: tuple[int, int]) -> nir.NIRNode:
    """LIF in snnTorch's convention (β = 1 − dt/tau, unit gain r·dt/tau = 1), or IF for β = 1."""
    if not 0.0 <= layer.beta <= 1.0:
        raise MksgnError(f"layer {layer.name!r} has β = {layer.beta}; NIR LIF needs 0 ≤ β ≤ 1")
    threshold = np.full(shape, float(layer.threshold))
    reset = np.zeros(shape)
    if layer.beta == 1.0:
        return nir.IF(r=np.ones(shape), v_threshold=threshold, v_reset=reset)
    tau = DEFAULT_DT / (1.0 - float(layer.beta))
    return nir.LIF(
        tau=np.full(shape, tau),
        r=np.full(shape, tau / DEFAULT_DT),
        v_leak=np.zeros(shape),
        v_threshold=threshold,
        v_reset=reset,
    )


def factorised_flops(
    synapse: FoldedGraphConv | FoldedTemporalConv, in_channels: int, nodes: int, frames: int
) -> int:
    """Multiply-accumulates of one step of a synapse as GCN papers count them (the paper-style
    FLOPs): a graph convolution is channel mixing K·C_out·C_in·F·V plus node aggregation over
    the adjacency's non-zero entries Σ_k nnz(A_k)·C_out·F, not the lowered kron matrix; a
    temporal convolution is F_out·V·C_out·C_in·k."""
    out_channels = synapse.bias.numel()
    if isinstance(synapse, FoldedGraphConv):
        partitions = synapse.weight.shape[0]
        mixing = partitions * out_channels * in_channels * frames * nodes
        aggregation = int(torch.count_nonzero(synapse.adjacency)) * out_channels * frames
        return mixing + aggregation
    kernel = synapse.weight.shape[2]
    return output_frames(synapse, frames) * nodes * out_channels * in_channels * kernel


def output_frames(synapse: FoldedGraphConv | FoldedTemporalConv, frames: int) -> int:
    """Frames after a synapse."""
    if isinstance(synapse, FoldedTemporalConv):
        kernel = synapse.weight.shape[2]
        return (frames + 2 * synapse.padding - kernel) // synapse.stride + 1
    return frames


@torch.no_grad()
def student_to_nir(model: torch.nn.Module) -> nir.NIRGraph:
    """Lower a Base-SGN or MK-SGN (eval mode) to a NIR graph following the mksgn contract.

    Weights are float32 (what the model holds; sums over partitions are taken in float64 first);
    neuron time constants are float64 so that β = 1 − dt/tau comes back exactly.
    """
    check_exportable(model)
    model = model.eval()
    config = model.config
    modalities = tuple(model.modalities)
    nodes_per_frame = config.nodes
    frames = config.frames
    encoded = COORDS * len(modalities)
    coding, hidden = fold_student(model)
    nodes: dict[str, nir.NIRNode] = {
        "input": nir.Input(input_type=np.array([nodes_per_frame * encoded, frames]))
    }
    edges: list[tuple[str, str]] = []
    flops: dict[str, int] = {}  # per synapse node: factorised_flops of one step
    sources: list[tuple[str, slice]] = []  # (LIF node, its channel slice of the next layer's input)
    channels = 0
    for index, (layer, modality) in enumerate(zip(coding, modalities, strict=True)):
        synapse_name, lif_name = f"{layer.name}.synapse", f"{layer.name}.lif"
        columns = slice(COORDS * index, COORDS * (index + 1))
        nodes[synapse_name] = synapse_conv(
            layer.synapse, nodes_per_frame, frames, columns, encoded, True
        )
        flops[synapse_name] = factorised_flops(layer.synapse, COORDS, nodes_per_frame, frames)
        out = layer.synapse.bias.numel()
        nodes[lif_name] = neuron_node(layer, (nodes_per_frame * out, frames))
        edges += [("input", synapse_name), (synapse_name, lif_name)]
        sources.append((lif_name, slice(channels, channels + out)))
        channels += out
        if layer.name != f"layer1.{modality}":
            raise MksgnError(f"coding layer {layer.name!r} does not match modality {modality!r}")
    for layer in hidden:
        out = layer.synapse.bias.numel()
        lif_name = f"{layer.name}.lif"
        for position, (source, columns) in enumerate(sources):
            suffix = f".{modalities[position]}" if len(sources) > 1 else ""
            synapse_name = f"{layer.name}.synapse{suffix}"
            nodes[synapse_name] = synapse_conv(
                layer.synapse, nodes_per_frame, frames, columns, channels, position == 0
            )
            width = columns.stop - columns.start
            flops[synapse_name] = factorised_flops(layer.synapse, width, nodes_per_frame, frames)
            edges += [(source, synapse_name), (synapse_name, lif_name)]
        frames = output_frames(layer.synapse, frames)
        nodes[lif_name] = neuron_node(layer, (nodes_per_frame * out, frames))
        sources, channels = [(lif_name, slice(0, out))], out
    ((last, _),) = sources
    readout_weight, readout_bias = fold_readout(model)
    readout = readout_weight.double().numpy() / (nodes_per_frame * frames)
    # Flatten index is (node·C + channel)·F + frame: repeat each channel's weight F times, per node.
    weight = np.tile(np.repeat(readout, frames, axis=1), (1, nodes_per_frame))
    nodes["readout.flatten"] = nir.Flatten(
        input_type={"input": np.array([nodes_per_frame * channels, frames])},
        start_dim=0,
        end_dim=-1,
    )
    nodes["readout.affine"] = nir.Affine(
        weight=weight.astype(np.float32), bias=readout_bias.numpy().astype(np.float32)
    )
    nodes["output"] = nir.Output(output_type=np.array([config.num_classes]))
    edges += [(last, "readout.flatten"), ("readout.flatten", "readout.affine")]
    edges += [("readout.affine", "output")]
    # The readout pools spikes over frames and nodes, then mixes channels into classes.
    flops["readout.affine"] = channels * frames * nodes_per_frame + channels * config.num_classes
    metadata = {
        "mksgn_version": __version__,
        "dt": DEFAULT_DT,  # stored, though snnTorch's convention is also every target's default
        "model": config.model,
        "time_steps": int(config.time_steps),
        "modalities": list(modalities),
        "frames": int(config.frames),
        "nodes": int(nodes_per_frame),
        "num_classes": int(config.num_classes),
        "factorised_flops_per_step": flops,
        # One JSON string: the skeleton `simulate --data` encodes (bones, joint count) for.
        "layout": config.skeleton_layout.to_json(),
    }
    # type_check=False: nir 1.0.8 miscounts the input channels of grouped convolutions;
    # validate_graph checks the shapes instead.
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=False)
    validate_graph(graph, "the exported graph")
    return graph


def write_nir(graph: nir.NIRGraph, path: str | os.PathLike[str]) -> Path:
    """Write a graph atomically with nir.write, then re-read it and check it is the same graph."""
    path = Path(path)
    with atomic_path(path, suffix=".nir") as tmp:
        # Built in memory, then written by Python: HDF5 writing straight to a full disk printed
        # hundreds of tracebacks and crashed the interpreter at exit.
        buffer = io.BytesIO()
        nir.write(buffer, graph)
        tmp.write_bytes(buffer.getbuffer())
        check_same_graph(graph, read_nir(tmp), path)
    return path


def check_same_graph(expected: nir.NIRGraph, actual: nir.NIRGraph, path: Path) -> None:
    """Raise unless two graphs have the same nodes, node types, edges and arrays."""
    if set(expected.nodes) != set(actual.nodes):
        raise MksgnError(f"{path}: re-reading gave nodes {sorted(actual.nodes)}")
    if sorted(map(tuple, expected.edges)) != sorted(map(tuple, actual.edges)):
        raise MksgnError(f"{path}: re-reading gave different edges")
    for name, node in expected.nodes.items():
        other = actual.nodes[name]
        if type(other) is not type(node):
            raise MksgnError(f"{path}: node {name!r} came back as {type(other).__name__}")
        if isinstance(node, nir.NIRGraph):
            check_same_graph(node, other, path)
            continue
        theirs = other.to_dict()
        for field, value in node.to_dict().items():
            if field in ("type", "metadata"):
                continue
            if field not in theirs or not np.array_equal(np.asarray(value), theirs[field]):
                raise MksgnError(f"{path}: node {name!r} field {field!r} changed on re-reading")
