"""What a model costs per sample: parameter count and dense multiply-accumulates."""

from __future__ import annotations

import torch
from torch import nn

from mksgn.train.models.config import ModelConfig
from mksgn.train.models.layers import GraphConv, TemporalConv


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def dense_macs_per_sample(model: nn.Module, config: ModelConfig) -> int:
    """Multiply-accumulates of one sample if every synapse ran densely on every call.

    Counted from one forward pass on a zero input: a spiking model's first layer runs once
    (direct coding repeats its current), every later synapse once per time step.
    """
    counts: list[int] = []

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        x = inputs[0]
        calls = x.shape[0]  # batch (×T for spiking layers): divide by samples below
        if isinstance(module, GraphConv):
            counts.append(calls * module.dense_macs(frames=x.shape[2]))
        elif isinstance(module, TemporalConv):
            counts.append(calls * module.dense_macs(frames_in=x.shape[2], nodes=x.shape[3]))
        elif isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1]
            per_output = module.in_channels // module.groups * kernel
            counts.append(int(_output.numel()) * per_output)
        elif isinstance(module, nn.Linear):
            leading = x.numel() // x.shape[-1]
            counts.append(leading * module.in_features * module.out_features)

    temporal_convs = {id(m.conv) for m in model.modules() if isinstance(m, TemporalConv)}
    hooks = [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, GraphConv | TemporalConv | nn.Linear)
        or (isinstance(m, nn.Conv2d) and id(m) not in temporal_convs)
    ]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        model(torch.zeros(1, 3, config.frames, config.joints, config.bodies, device=device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return int(sum(counts))
