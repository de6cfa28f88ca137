"""The GCN teacher's dense MACs per sample, from its checkpoint (mksgn.train.models.cost) or its
ONNX export (Conv, MatMul, Gemm and Einsum nodes, per node and per top-level layer), and the check
that a teacher was built for the student's task."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mksgn.errors import MksgnError


def torch_teacher_macs(checkpoint: str | os.PathLike[str]) -> float:
    """Dense MACs per sample of a GCN teacher checkpoint (mksgn.train.models.cost)."""
    from mksgn.train.checkpoint import load_model
    from mksgn.train.models.cost import dense_macs_per_sample

    model, config, _ = load_model(checkpoint)
    if config.model != "gcn":
        raise MksgnError(
            f"{checkpoint} holds a {config.model} model, not the GCN teacher; give the teacher's "
            "checkpoint or its ONNX export with --teacher"
        )
    return float(dense_macs_per_sample(model, config))


def onnx_macs_per_sample(path: str | os.PathLike[str]) -> float:
    """MACs of one sample of an ONNX model (the sum of `onnx_macs_per_node`)."""
    return float(sum(onnx_macs_per_node(path).values()))


def onnx_macs_per_node(path: str | os.PathLike[str]) -> dict[str, float]:
    """MACs of one sample per Conv, MatMul, Gemm and Einsum node (by node name, in graph order),
    with shapes from onnx.shape_inference (symbolic batch axes set to 1)."""
    import onnx
    from onnx import numpy_helper, shape_inference

    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as error:  # DecodeError, OSError, ...
        raise MksgnError(f"{path} is not a readable ONNX model ({error})") from None
    initialized = {init.name for init in model.graph.initializer}
    for graph_input in model.graph.input:
        if graph_input.name in initialized:
            continue
        for dim in graph_input.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1  # the batch axis: count one sample
    inferred = shape_inference.infer_shapes(model, data_prop=True)
    shapes: dict[str, tuple[int, ...]] = {}
    for info in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        dims = info.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[info.name] = tuple(d.dim_value for d in dims)
    for init in inferred.graph.initializer:
        shapes[init.name] = tuple(numpy_helper.to_array(init).shape)

    counted = [n for n in inferred.graph.node if n.op_type in ("Conv", "MatMul", "Gemm", "Einsum")]
    unknown = [
        name for node in counted for name in (*node.input, *node.output) if name not in shapes
    ]
    if unknown:  # shapes computed from data (e.g. a Pad's pads): measure them on one sample
        shapes.update(measured_shapes(inferred, list(dict.fromkeys(unknown)), path))

    def shape(name: str, node) -> tuple[int, ...]:
        if name not in shapes:
            raise MksgnError(
                f"{path}: the shape of {name!r} ({node.op_type} node {node.name!r}) is unknown, "
                "so its MACs cannot be counted"
            )
        return shapes[name]

    per_node: dict[str, float] = {}
    for index, node in enumerate(counted):
        if node.op_type == "Conv":
            weight = shape(node.input[1], node)
            macs = int(np.prod(shape(node.output[0], node))) * int(np.prod(weight[1:]))
        elif node.op_type == "MatMul":
            left = shape(node.input[0], node)
            macs = int(np.prod(shape(node.output[0], node))) * left[-1]
        elif node.op_type == "Gemm":
            left = shape(node.input[0], node)
            trans_a = any(a.name == "transA" and a.i for a in node.attribute)
            macs = int(np.prod(shape(node.output[0], node))) * left[0 if trans_a else 1]
        else:  # Einsum
            macs = einsum_macs(node, [shape(name, node) for name in node.input])
        per_node[node.name or f"{node.op_type}_{index}"] = float(macs)
    return per_node


def onnx_macs_per_layer(path: str | os.PathLike[str]) -> dict[str, float]:
    """`onnx_macs_per_node` summed per top-level module of a torch export ('/model/blocks.0/
    spatial/Einsum' -> 'blocks.0'), in graph order."""
    layers: dict[str, float] = {}
    for name, macs in onnx_macs_per_node(path).items():
        parts = [part for part in name.split("/") if part]
        layer = parts[1] if len(parts) > 2 and parts[0] == "model" else parts[0]
        layers[layer] = layers.get(layer, 0.0) + macs
    return layers


def measured_shapes(model, names: list[str], path: Path) -> dict[str, tuple[int, ...]]:
    """Shapes of intermediate tensors that shape inference left open, from an onnxruntime run of
    one all-zero sample with those tensors exposed as outputs."""
    import onnx
    import onnxruntime

    model = onnx.ModelProto.FromString(model.SerializeToString())
    types = {info.name: info.type.tensor_type.elem_type for info in model.graph.value_info}
    for name in names:
        elem_type = types.get(name, onnx.TensorProto.FLOAT)
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, elem_type, None))
    initialized = {init.name for init in model.graph.initializer}
    feeds = {}
    for graph_input in model.graph.input:
        if graph_input.name in initialized:
            continue
        dims = [d.dim_value for d in graph_input.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(graph_input.type.tensor_type.elem_type)
        feeds[graph_input.name] = np.zeros(dims, dtype=dtype)
    try:
        session = onnxruntime.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        values = session.run(names, feeds)
    except Exception as error:  # onnxruntime raises its own exception types
        raise MksgnError(
            f"{path}: could not run the model to measure the shapes of {names[:3]}... ({error})"
        ) from None
    return {name: tuple(value.shape) for name, value in zip(names, values, strict=True)}


def einsum_macs(node, input_shapes: list[tuple[int, ...]]) -> int:
    """Product of the sizes of every index of an einsum equation (one MAC per combination)."""
    (equation,) = [a.s.decode() for a in node.attribute if a.name == "equation"]
    operands = equation.replace(" ", "").split("->")[0].split(",")
    sizes: dict[str, int] = {}
    for letters, dims in zip(operands, input_shapes, strict=True):
        if "..." in letters or len(letters) != len(dims):
            raise MksgnError(
                f"Einsum node {node.name!r}: equation {equation!r} with ellipsis or a rank "
                "mismatch is not supported for MAC counting"
            )
        sizes.update(zip(letters, dims, strict=True))
    return int(np.prod(list(sizes.values()), dtype=np.int64))


def teacher_task(path: str | os.PathLike[str]) -> tuple[int | None, int | None]:
    """(classes, graph nodes per frame) the GCN teacher at `path` (checkpoint or ONNX) was
    built for; None where the file does not say."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        import onnx

        graph = onnx.load(str(path)).graph

        def dims(info) -> list[int | None]:
            return [
                d.dim_value if d.HasField("dim_value") else None
                for d in info.type.tensor_type.shape.dim
            ]

        joints = dims(graph.input[0]) if graph.input else []
        logits = dims(graph.output[0]) if graph.output else []
        nodes = joints[3] * joints[4] if len(joints) == 5 and None not in joints[3:] else None
        return (logits[-1] if logits else None), nodes
    from mksgn.train.checkpoint import load_model

    _, config, _ = load_model(path)
    return config.num_classes, config.nodes


def check_teacher_task(
    teacher: str | os.PathLike[str], metadata: dict, student: str | os.PathLike[str]
) -> None:
    """Refuse a teacher built for another task (classes or skeleton graph) than the student's
    graph metadata: a reduction against it would compare unlike things."""
    classes, nodes = teacher_task(teacher)
    for what, theirs, ours in (
        ("classes", classes, metadata.get("num_classes")),
        ("graph nodes per frame", nodes, metadata.get("nodes")),
    ):
        if theirs is not None and ours is not None and int(theirs) != int(ours):
            raise MksgnError(
                f"--teacher {teacher} was built for {theirs} {what} but the student {student} "
                f"for {ours}: give the teacher of the student's task"
            )


def teacher_macs(path: str | os.PathLike[str]) -> float:
    """MACs per sample of the GCN teacher given as an ONNX file or a checkpoint."""
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(2)
    if path.suffix.lower() == ".onnx":
        return onnx_macs_per_sample(path)
    if head == b"PK" or path.suffix.lower() in (".pt", ".pth", ".ckpt"):
        return torch_teacher_macs(path)
    raise MksgnError(
        f"--teacher {path} is neither an .onnx file nor a checkpoint; give the GCN teacher's "
        "checkpoint.pt or its 'mksgn export --onnx' file"
    )
