"""Synapse layers shared by the GCN teacher and the spiking students, and the spiking layer.

Every synapse is linear and static at inference, so it lowers to a NIR Conv node:
a graph convolution Σ_k A_k X W_k is a 1×1 convolution over frames with weight Σ_k kron(A_kᵀ, W_k),
a temporal convolution shared over joints is a grouped convolution (groups = joints).
"""

from __future__ import annotations

import math

import numpy as np
import snntorch as snn
import torch
from snntorch import surrogate
from torch import nn
from torch.nn import functional as F

from mksgn.train.data.layout import NTU_25, SkeletonLayout


def body_graph(bodies: int, layout: SkeletonLayout = NTU_25) -> np.ndarray:
    """The layout's 3-partition adjacency with each body as its own copy of the joint graph
    (block diagonal over bodies, node index = body * V + joint)."""
    single = layout.spatial_partition()
    joints = single.shape[-1]
    full = np.zeros((single.shape[0], joints * bodies, joints * bodies), dtype=np.float32)
    for body in range(bodies):
        block = slice(body * joints, (body + 1) * joints)
        full[:, block, block] = single
    return full


def hop_support(adjacency: np.ndarray, hops: int) -> np.ndarray:
    """(V, V) bool: node v reaches node w in at most `hops` edges of the graph any partition of
    `adjacency` (K, V, V) connects; every node reaches itself."""
    step = (np.abs(adjacency).sum(axis=0) > 0) | np.eye(adjacency.shape[-1], dtype=bool)
    step = step | step.T
    reach = np.eye(adjacency.shape[-1], dtype=bool)
    for _ in range(hops):
        reach = (reach.astype(np.int64) @ step.astype(np.int64)) > 0
    return reach


class GraphConv(nn.Module):
    """Spatial graph convolution y_w = Σ_k Σ_v (W_k x)_v A_k[v, w] + b over (N, C, F, V).

    With `attention`, each partition adds a learned joint-attention map
    A_k + γ_k · softmax_v(E_q E_kᵀ / √d): learned, not data-dependent, so it folds into
    the adjacency at inference (NIR has no activation × activation product). With
    `attention_hops` k, each joint attends only to joints within k edges of it (the softmax runs
    over that support), so the folded adjacency keeps the skeleton's sparsity and a deployed
    spike reaches (k-hop neighbours) × C_out synapses instead of V × C_out; None attends to all.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        adjacency: np.ndarray,
        attention: bool = False,
        attention_hops: int | None = None,
    ) -> None:
        super().__init__()
        partitions, nodes, _ = adjacency.shape
        self.in_channels, self.out_channels, self.partitions = in_channels, out_channels, partitions
        self.register_buffer("adjacency", torch.as_tensor(adjacency, dtype=torch.float32))
        self.weight = nn.Parameter(torch.empty(partitions, out_channels, in_channels))
        nn.init.kaiming_uniform_(self.weight.view(-1, in_channels), a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.attention = attention
        if attention:
            dim = 16
            self.query = nn.Parameter(torch.randn(nodes, dim) * 0.1)
            self.key = nn.Parameter(torch.randn(nodes, dim) * 0.1)
            # γ starts at 0: training starts from the plain graph and learns how much to attend.
            self.gate = nn.Parameter(torch.zeros(partitions))
            support = (
                np.ones((nodes, nodes), dtype=bool)
                if attention_hops is None
                else hop_support(adjacency, attention_hops)
            )
            # Not saved: it follows from the adjacency and the config, so checkpoints of
            # dense-attention models (saved before supports existed) still load.
            self.register_buffer("outside_support", torch.as_tensor(~support), persistent=False)

    def effective_adjacency(self) -> torch.Tensor:
        """(K, V, V) adjacency including the folded attention map."""
        if not self.attention:
            return self.adjacency
        scores = self.query @ self.key.T / math.sqrt(self.query.shape[1])
        scores = scores.masked_fill(self.outside_support, float("-inf"))
        attention_map = torch.softmax(scores, dim=0)  # columns sum to 1, like norm(A)
        return self.adjacency + self.gate[:, None, None] * attention_map

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, F, V) -> (N, C_out, F, V)."""
        mixed = torch.einsum("kdc,ncfv->nkdfv", self.weight, x)
        out = torch.einsum("nkdfv,kvw->ndfw", mixed, self.effective_adjacency())
        return out + self.bias[None, :, None, None]

    def dense_macs(self, frames: int) -> int:
        """Multiply-accumulates of one dense evaluation: channel mixing plus node aggregation."""
        nodes = self.adjacency.shape[-1]
        mixing = self.partitions * self.out_channels * self.in_channels * frames * nodes
        aggregation = self.partitions * self.out_channels * frames * nodes * nodes
        return mixing + aggregation


class TemporalConv(nn.Module):
    """Convolution over frames shared by every node: (N, C_in, F, V) -> (N, C_out, F/stride, V)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"temporal kernel must be odd to keep frames centred, got {kernel}")
        self.conv = nn.Conv2d(
            in_channels, out_channels, (kernel, 1), stride=(stride, 1), padding=(kernel // 2, 0)
        )

    def effective_weight(self) -> torch.Tensor:
        """The (C_out, C_in, k, 1) weight in force at inference."""
        return self.conv.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the temporal convolution."""
        conv = self.conv
        return F.conv2d(x, self.effective_weight(), conv.bias, conv.stride, conv.padding)

    def dense_macs(self, frames_in: int, nodes: int) -> int:
        """Multiply-accumulates of one dense evaluation."""
        (kernel, _), (stride, _), (padding, _) = (
            self.conv.kernel_size,
            self.conv.stride,
            self.conv.padding,
        )
        frames_out = (frames_in + 2 * padding - kernel) // stride + 1
        return frames_out * nodes * self.conv.out_channels * self.conv.in_channels * kernel


class FusionTemporalConv(TemporalConv):
    """Spiking multimodal fusion: a temporal conv over the concatenated spikes of M modality
    branches whose input-channel groups are weighted by w_m = gate_m × mi_weight_m.

    The gate is learned; `mi_weight` is set from mutual-information estimates during training.
    Both scale weights, not activations, so the fused input stays binary and the weights fold.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, modalities: int
    ) -> None:
        super().__init__(in_channels, out_channels, kernel, stride)
        if in_channels % modalities:
            raise ValueError(f"{in_channels} channels do not split into {modalities} modalities")
        self.modalities = modalities
        self.gate = nn.Parameter(torch.ones(modalities))
        self.register_buffer("mi_weight", torch.ones(modalities))

    def fusion_weights(self) -> torch.Tensor:
        """Per-modality weights w_m."""
        return self.gate * self.mi_weight

    def effective_weight(self) -> torch.Tensor:
        """Convolution weight with each modality's input channels scaled by its fusion weight."""
        per_channel = self.fusion_weights().repeat_interleave(
            self.conv.in_channels // self.modalities
        )
        return self.conv.weight * per_channel[None, :, None, None]


class SpikingLayer(nn.Module):
    """Batch norm then a snnTorch `Leaky` population with one learnable β and threshold per layer.

    Reset to zero (Lava's LIF semantics); β and threshold are scalars because Lava's LIF shares
    du, dv and vth across a population.
    """

    def __init__(self, channels: int, beta: float, threshold: float, slope: float) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)
        self.neuron = snn.Leaky(
            beta=torch.tensor(beta),
            threshold=torch.tensor(threshold),
            learn_beta=True,
            learn_threshold=True,
            reset_mechanism="zero",
            spike_grad=surrogate.fast_sigmoid(slope=slope),
        )

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        """(T, N, C, F, V) synaptic current -> (T, N, C, F, V) spikes."""
        steps, batch = current.shape[:2]
        current = self.norm(current.flatten(0, 1)).unflatten(0, (steps, batch))
        membrane = torch.zeros_like(current[0])
        spikes = []
        for step in range(steps):
            spike, membrane = self.neuron(current[step], membrane)
            spikes.append(spike)
        return torch.stack(spikes)
