"""ONNX export of the GCN teacher, checked with onnx.checker and against onnxruntime."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mksgn.atomic import atomic_path
from mksgn.errors import MksgnError
from mksgn.train.models.gcn import GCNTeacher

TOLERANCE = 1e-4


class LogitsOnly(nn.Module):
    """The teacher with a tensor output: joints (N, 3, F, V, M) -> logits (N, classes)."""

    def __init__(self, model: GCNTeacher) -> None:
        super().__init__()
        self.model = model

    def forward(self, joints: torch.Tensor) -> torch.Tensor:
        """Logits of the wrapped model."""
        return self.model(joints).logits


def teacher_to_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    frames: int,
    joints: int | None = None,
    bodies: int | None = None,
    opset: int = 17,
    seed: int = 0,
) -> dict[str, float | int | str]:
    """Export the GCN teacher (dynamic batch) atomically; refuse the file unless onnx.checker
    accepts it and onnxruntime matches PyTorch to 1e-4 relative to the largest logit on random
    joints."""
    import onnx
    import onnxruntime

    if not isinstance(model, GCNTeacher):
        raise MksgnError(
            f"a {type(model).__name__} is not the GCN teacher; only the teacher exports to ONNX "
            "(export spiking students with --nir)"
        )
    joints = model.config.joints if joints is None else joints  # the model's own skeleton
    bodies = model.config.bodies if bodies is None else bodies
    path = Path(path)
    wrapper = LogitsOnly(model.eval()).eval()
    generator = torch.Generator().manual_seed(seed)
    sample = torch.randn(2, 3, frames, joints, bodies, generator=generator)
    with atomic_path(path, suffix=".onnx") as tmp:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side shape arithmetic
            torch.onnx.export(
                wrapper,
                (sample,),
                str(tmp),
                input_names=["joints"],
                output_names=["logits"],
                dynamic_axes={"joints": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=opset,
            )
        try:
            onnx.checker.check_model(onnx.load(str(tmp)), full_check=True)
        except Exception as error:
            raise MksgnError(f"the ONNX export of the teacher is invalid: {error}") from None
        # A batch size other than the traced one checks that the batch axis really is dynamic.
        check = torch.randn(3, 3, frames, joints, bodies, generator=generator)
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        (onnx_logits,) = session.run(["logits"], {"joints": check.numpy()})
        with torch.no_grad():
            torch_logits = wrapper(check).numpy()
        difference = float(np.max(np.abs(onnx_logits - torch_logits)))
        # Relative to the logits' scale: float32 kernels of two runtimes differ in summation
        # order, and a trained teacher's logits on random joints reach tens.
        allowed = TOLERANCE * max(1.0, float(np.max(np.abs(torch_logits))))
        if not difference <= allowed:
            raise MksgnError(
                f"onnxruntime and PyTorch disagree on the exported teacher by {difference:.3g} "
                f"(> {allowed:.3g} = {TOLERANCE} x the largest logit); {path} was not written"
            )
    return {
        "path": str(path),
        "opset": opset,
        "max_abs_diff": difference,
        "bytes": path.stat().st_size,
    }
