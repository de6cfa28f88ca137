"""The GCN teacher: a multimodal ST-GCN-style network in plain PyTorch (ONNX-exportable ops only)."""

from __future__ import annotations

import torch
from torch import nn

from mksgn.train.data.modalities import MODALITIES
from mksgn.train.models.config import ModelConfig
from mksgn.train.models.layers import GraphConv, TemporalConv, body_graph
from mksgn.train.models.output import ModelOutput, encode_input

COORDS = 3


class GCNBlock(nn.Module):
    """Graph conv -> BN -> ReLU -> temporal conv -> BN, plus a residual, then ReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, config: ModelConfig
    ) -> None:
        super().__init__()
        self.spatial = GraphConv(
            in_channels, out_channels, body_graph(config.bodies, config.skeleton_layout)
        )
        self.spatial_norm = nn.BatchNorm2d(out_channels)
        self.temporal = TemporalConv(out_channels, out_channels, config.temporal_kernel, stride)
        self.temporal_norm = nn.BatchNorm2d(out_channels)
        if in_channels == out_channels and stride == 1:
            self.residual: nn.Module = nn.Identity()
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=(stride, 1)),
                nn.BatchNorm2d(out_channels),
            )
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, F, V) -> (N, C_out, F / stride, V)."""
        hidden = self.activation(self.spatial_norm(self.spatial(x)))
        hidden = self.temporal_norm(self.temporal(hidden))
        return self.activation(hidden + self.residual(x))


class GCNTeacher(nn.Module):
    """Multimodal spatio-temporal GCN over all four modalities (the KD teacher and the MAC baseline)."""

    modalities = MODALITIES

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        channels = COORDS * len(self.modalities)
        self.input_norm = nn.BatchNorm2d(channels)
        self.blocks = nn.ModuleList()
        for spec in config.layers:
            self.blocks.append(GCNBlock(channels, spec.channels, spec.stride, config))
            channels = spec.channels
        self.readout = nn.Linear(channels, config.num_classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        """(N, 3, F, V, M) joints -> logits and per-block features."""
        hidden = self.input_norm(encode_input(x, self.modalities, self.config.skeleton_layout))
        out = ModelOutput(logits=torch.empty(0))
        for index, block in enumerate(self.blocks, start=1):
            hidden = block(hidden)
            out.features[f"block{index}"] = hidden
        out.logits = self.readout(hidden.mean(dim=(-2, -1)))
        return out
