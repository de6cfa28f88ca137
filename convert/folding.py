"""Inference-time folding: batch norm into the preceding synapse, attention and fusion weights into
static weights. The folded layers are what export lowers to NIR; they compute what the model does."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from mksgn.train.models.layers import GraphConv, SpikingLayer, TemporalConv
from mksgn.train.models.sgn import BaseSGN, SpikingBlock


@dataclass(frozen=True)
class FoldedGraphConv:
    """y_w = Σ_k Σ_v (W_k x)_v A_k[v, w] + b with BN and attention folded in."""

    adjacency: torch.Tensor  # (K, V, V)
    weight: torch.Tensor  # (K, C_out, C_in)
    bias: torch.Tensor  # (C_out,)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, F, V) -> (N, C_out, F, V)."""
        mixed = torch.einsum("kdc,ncfv->nkdfv", self.weight, x)
        return torch.einsum("nkdfv,kvw->ndfw", mixed, self.adjacency) + self.bias[:, None, None]


@dataclass(frozen=True)
class FoldedTemporalConv:
    """Temporal convolution (torch cross-correlation convention) with BN and fusion folded in."""

    weight: torch.Tensor  # (C_out, C_in, k, 1)
    bias: torch.Tensor  # (C_out,)
    stride: int
    padding: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, F, V) -> (N, C_out, F', V)."""
        return F.conv2d(x, self.weight, self.bias, (self.stride, 1), (self.padding, 0))


@dataclass(frozen=True)
class FoldedSpikingLayer:
    """A deployable spiking layer: folded synapse, then LIF with per-layer β and threshold
    (reset to zero)."""

    name: str
    synapse: FoldedGraphConv | FoldedTemporalConv
    beta: float
    threshold: float


def batchnorm_scale_shift(
    norm: nn.BatchNorm1d | nn.BatchNorm2d,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) with BN(x) = scale · x + shift in eval mode."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return scale, norm.bias - norm.running_mean * scale


def fold_synapse(synapse: nn.Module, norm: nn.BatchNorm2d) -> FoldedGraphConv | FoldedTemporalConv:
    """Fold the batch norm that follows a synapse into its weights and bias."""
    scale, shift = batchnorm_scale_shift(norm)
    if isinstance(synapse, GraphConv):
        return FoldedGraphConv(
            adjacency=synapse.effective_adjacency().detach().clone(),
            weight=(synapse.weight * scale[None, :, None]).detach().clone(),
            bias=(synapse.bias * scale + shift).detach().clone(),
        )
    if isinstance(synapse, TemporalConv):
        conv = synapse.conv
        return FoldedTemporalConv(
            weight=(synapse.effective_weight() * scale[:, None, None, None]).detach().clone(),
            bias=(conv.bias * scale + shift).detach().clone(),
            stride=conv.stride[0],
            padding=conv.padding[0],
        )
    raise TypeError(f"cannot fold a {type(synapse).__name__}")


def neuron_parameters(layer: SpikingLayer) -> tuple[float, float]:
    """(β clamped to [0, 1] as snnTorch applies it, threshold) of a spiking layer."""
    return float(layer.neuron.beta.clamp(0, 1)), float(layer.neuron.threshold)


def fold_block(name: str, block: SpikingBlock) -> FoldedSpikingLayer:
    """Fold one spiking block."""
    beta, threshold = neuron_parameters(block.neurons)
    return FoldedSpikingLayer(
        name, fold_synapse(block.synapse, block.neurons.norm), beta, threshold
    )


@torch.no_grad()
def fold_student(model: BaseSGN) -> tuple[list[FoldedSpikingLayer], list[FoldedSpikingLayer]]:
    """(input coding layers, hidden layers) of a Base-SGN or MK-SGN in eval mode.

    Coding layers run in parallel on their modality's 3 input channels (one for Base-SGN, one per
    modality for MK-SGN) and their spikes are concatenated; hidden layers run in sequence.
    """
    if model.training:
        raise ValueError("fold a model in eval mode (model.eval()): BN uses running statistics")
    branches = getattr(model.coding, "branches", {"joint": model.coding})
    coding = [fold_block(f"layer1.{name}", block) for name, block in branches.items()]
    hidden = [
        fold_block(f"layer{index}", block) for index, block in enumerate(model.hidden, start=2)
    ]
    return coding, hidden


@torch.no_grad()
def fold_readout(model: BaseSGN) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight (classes, C), bias (classes,)) of a student's readout with the batch norm of the
    pooled rates (if any) folded in: W·BN(r) + b = (W·diag(scale))·r + (b + W·shift)."""
    weight, bias = model.readout.weight, model.readout.bias
    if model.readout_norm is None:
        return weight.detach().clone(), bias.detach().clone()
    scale, shift = batchnorm_scale_shift(model.readout_norm)
    return (weight * scale[None, :]).detach().clone(), (bias + weight @ shift).detach().clone()
