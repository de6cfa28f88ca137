"""`mksgn export`: a checkpoint to NIR (spiking students) or ONNX (the GCN teacher)."""

from __future__ import annotations

import os
from pathlib import Path

from mksgn.errors import MksgnError


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    nir_path: str | os.PathLike[str] | None = None,
    onnx_path: str | os.PathLike[str] | None = None,
) -> dict[str, object]:
    """Export a checkpoint's model to the one format that can express it; summary for --json."""
    from mksgn.train.checkpoint import load_model

    model, config, _ = load_model(checkpoint)
    if config.model == "gcn":
        if nir_path is not None:
            raise MksgnError(
                f"{checkpoint} holds the GCN teacher, which does not spike and has no NIR form; "
                "export it with --onnx OUT.onnx (NIR is for Base-SGN and MK-SGN students)"
            )
        from mksgn.convert.onnx_export import teacher_to_onnx

        report = teacher_to_onnx(
            model, onnx_path, frames=config.frames, joints=config.joints, bodies=config.bodies
        )
        return {"format": "onnx", "model": config.model, **report}
    if onnx_path is not None:
        raise MksgnError(
            f"{checkpoint} holds a spiking {config.model} student; ONNX has no spiking neurons, "
            "so export it with --nir OUT.nir (ONNX is for the GCN teacher)"
        )
    from mksgn.convert.nir_export import student_to_nir, write_nir

    graph = student_to_nir(model)
    path = write_nir(graph, nir_path)
    return {
        "format": "nir",
        "model": config.model,
        "path": str(path),
        "bytes": Path(path).stat().st_size,
        "nodes": len(graph.nodes),
        "edges": len(graph.edges),
        "metadata": graph.metadata,
    }
