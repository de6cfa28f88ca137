"""Small models and inputs shared by the model, export and simulation tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import nir
import numpy as np
import torch

from mksgn.convert.nir_nodes import SPIKING_TYPES
from mksgn.train.checkpoint import save_checkpoint
from mksgn.train.models import build_model, preset_config
from mksgn.train.models.config import LayerSpec, ModelConfig
from mksgn.train.models.layers import GraphConv, SpikingLayer
from mksgn.train.models.output import encode_input

FRAMES, CLASSES, STEPS = 8, 3, 3  # the size of spiking_student


def tiny_config(
    model: str, classes: int, time_steps: int = 3, frames: int = 8, **changes
) -> ModelConfig:
    """4-8 channels; students have sgc, (fusion) stc, sgc, strided stc; the teacher two blocks."""
    config = preset_config(model, "tiny", num_classes=classes, time_steps=time_steps, frames=frames)
    if model == "gcn":
        layers = (LayerSpec("gcn-block", 4), LayerSpec("gcn-block", 8, stride=2))
    else:
        layers = (
            LayerSpec("sgc", 4),
            LayerSpec("stc", 6),
            LayerSpec("sgc", 8),
            LayerSpec("stc", 8, stride=2),
        )
    return dataclasses.replace(config, layers=layers, temporal_kernel=3, **changes)


def randomize_inference_state(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics, attention gates and fusion weights, as after training."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            shape = module.running_mean.shape
            module.running_mean.copy_(torch.randn(shape, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(shape, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(shape, generator=generator) * 0.1)
        if isinstance(module, GraphConv) and module.attention:
            module.gate.data.copy_(torch.rand(module.gate.shape, generator=generator))
    if hasattr(model, "fusion"):
        model.fusion.gate.data.copy_(torch.tensor([0.5, 1.5, 1.0, 0.8]))
        model.fusion.mi_weight.copy_(torch.tensor([1.2, 0.6, 1.1, 1.1]))


def joints(batch: int = 3, frames: int = 8, seed: int = 0) -> torch.Tensor:
    """Random joints (N, 3, F, 25, 2) with a silent second body in the first sample."""
    x = torch.randn(batch, 3, frames, 25, 2, generator=torch.Generator().manual_seed(seed))
    x[0, ..., 1] = 0
    return x


def save_model(model: torch.nn.Module, path: Path, config: ModelConfig | None = None) -> Path:
    """A checkpoint of `model` as `mksgn train` writes it (no optimiser state)."""
    save_checkpoint(
        path,
        config=config if config is not None else model.config,
        model_state=model.state_dict(),
        optimizer_state=None,
        scheduler_state=None,
        epoch=1,
        metrics={},
        rng_state={},
    )
    return path


def spiking_student(name: str, beta: float = 0.5, **changes) -> torch.nn.Module:
    """A randomised student in eval mode whose layers all spike (`changes`: to its config)."""
    torch.manual_seed(0)
    config = tiny_config(name, CLASSES, STEPS, FRAMES, threshold=0.3, beta=beta, **changes)
    model = build_model(config)
    randomize_inference_state(model)
    with torch.no_grad():  # learned β and θ differ from layer to layer after training
        layers = [m for m in model.modules() if isinstance(m, SpikingLayer)]
        for index, layer in enumerate(layers):
            layer.neuron.beta.copy_(torch.tensor(min(beta + 0.0731 * index, 1.0)))
            layer.neuron.threshold.copy_(torch.tensor(0.3 + 0.0137 * index))
    return model.eval()


def node_major_input(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """(N, T, V·C_enc, F): the encoded input laid out node-major, repeated over time steps."""
    encoded = encode_input(x, model.modalities)
    n, c, f, v = encoded.shape
    layout = encoded.permute(0, 3, 1, 2).reshape(n, v * c, f).numpy()
    return np.repeat(layout[:, None], model.config.time_steps, axis=1)


def node_major_spikes(spikes: torch.Tensor) -> torch.Tensor:
    """Model spikes (T, N, C, F, V) -> (N, T, V·C, F)."""
    t, n, c, f, v = spikes.shape
    return spikes.permute(1, 0, 4, 2, 3).reshape(n, t, v * c, f)


def spiking_nodes(graph: nir.NIRGraph) -> tuple[str, ...]:
    """The graph's spiking nodes, in its order: what the parity tests record."""
    return tuple(n for n, node in graph.nodes.items() if isinstance(node, SPIKING_TYPES))
