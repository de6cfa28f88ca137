"""Spiking students in snnTorch: Base-SGN (joint modality) and MK-SGN (four modalities, spiking
multimodal fusion, SA-SGC attention, spiking temporal convolution)."""

from __future__ import annotations

import torch
from torch import nn

from mksgn.train.data.modalities import MODALITIES
from mksgn.train.models.config import LayerSpec, ModelConfig
from mksgn.train.models.layers import (
    FusionTemporalConv,
    GraphConv,
    SpikingLayer,
    TemporalConv,
    body_graph,
)
from mksgn.train.models.output import ModelOutput, encode_input

COORDS = 3


def make_synapse(
    spec: LayerSpec, in_channels: int, config: ModelConfig, attention: bool, modalities: int = 1
) -> nn.Module:
    """The synapse of one spiking layer: spatial graph conv ("sgc") or temporal conv ("stc")."""
    if spec.kind == "sgc":
        if spec.stride != 1:
            raise ValueError("a spatial graph convolution cannot stride over frames")
        return GraphConv(
            in_channels,
            spec.channels,
            body_graph(config.bodies, config.skeleton_layout),
            attention,
            config.attention_hops,
        )
    if spec.kind == "stc" and modalities > 1:
        return FusionTemporalConv(
            in_channels, spec.channels, config.temporal_kernel, spec.stride, modalities
        )
    if spec.kind == "stc":
        return TemporalConv(in_channels, spec.channels, config.temporal_kernel, spec.stride)
    raise ValueError(f"unknown spiking layer kind {spec.kind!r}")


class SpikingBlock(nn.Module):
    """One spiking layer: synapse, then batch norm and Leaky neurons, applied to every step."""

    def __init__(self, synapse: nn.Module, channels: int, config: ModelConfig) -> None:
        super().__init__()
        self.synapse = synapse
        self.neurons = SpikingLayer(channels, config.beta, config.threshold, config.surrogate_slope)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        """(T, N, C_in, F, V) spikes -> (T, N, C_out, F', V) spikes."""
        steps, batch = spikes.shape[:2]
        return self.neurons(self.synapse(spikes.flatten(0, 1)).unflatten(0, (steps, batch)))

    def encode(self, encoded: torch.Tensor, time_steps: int) -> torch.Tensor:
        """Direct coding: the real-valued input's current (computed once) drives every step."""
        current = self.synapse(encoded)
        return self.neurons(current.unsqueeze(0).expand(time_steps, *current.shape))


class BaseSGN(nn.Module):
    """Spiking GCN: direct-coded joint input, alternating spiking graph conv / temporal conv layers.

    Readout: a linear layer on the last layer's spike rate (pooled over frames and nodes, batch
    normalised with `config.readout_norm`), averaged over time steps, i.e. linear in the spike
    counts.
    """

    modalities: tuple[str, ...] = ("joint",)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        first, *rest = config.layers
        self.coding = self.build_coding(first)
        self.hidden = nn.ModuleList()
        channels = self.coding_channels(first)
        for index, spec in enumerate(rest):
            groups = len(self.modalities) if index == 0 else 1
            synapse = self.build_hidden_synapse(spec, channels, groups)
            self.hidden.append(SpikingBlock(synapse, spec.channels, config))
            channels = spec.channels
        # Spike rates lie in [0, 1] and vary by ~0.2: normalised, the readout reaches confident
        # logits without its weights first growing by an order of magnitude.
        self.readout_norm = nn.BatchNorm1d(channels) if config.readout_norm else None
        self.readout = nn.Linear(channels, config.num_classes)

    def build_coding(self, spec: LayerSpec) -> nn.Module:
        """The first (non-spiking input, MAC) layer that turns coordinates into spikes."""
        return SpikingBlock(
            make_synapse(spec, COORDS, self.config, False), spec.channels, self.config
        )

    def coding_channels(self, spec: LayerSpec) -> int:
        """Channels of the first layer's spikes."""
        return spec.channels

    def build_hidden_synapse(self, spec: LayerSpec, channels: int, groups: int) -> nn.Module:
        """Synapse of layers 2..L."""
        return make_synapse(spec, channels, self.config, attention=False)

    def code(self, encoded: torch.Tensor) -> torch.Tensor:
        """(N, C, F, V) encoded input -> (T, N, C1, F, V) first-layer spikes."""
        return self.coding.encode(encoded, self.config.time_steps)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        """(N, 3, F, V, M) joints -> logits, per-layer time-averaged features and spikes."""
        spikes = self.code(encode_input(x, self.modalities, self.config.skeleton_layout))
        out = ModelOutput(logits=torch.empty(0), spikes={"layer1": spikes})
        for index, block in enumerate(self.hidden, start=2):
            spikes = block(spikes)
            out.spikes[f"layer{index}"] = spikes
        out.features = {name: s.mean(0) for name, s in out.spikes.items()}
        rates = spikes.mean(dim=(-2, -1))  # (T, N, C)
        if self.readout_norm is not None:
            steps, batch = rates.shape[:2]
            rates = self.readout_norm(rates.flatten(0, 1)).unflatten(0, (steps, batch))
        out.logits = self.readout(rates).mean(0)
        return out


class MultimodalCoding(nn.Module):
    """Skeleton spiking coding: one spiking graph-conv branch per modality (joint, bone,
    joint motion, bone motion); their spikes are concatenated on channels."""

    def __init__(self, spec: LayerSpec, config: ModelConfig, modalities: tuple[str, ...]) -> None:
        super().__init__()
        self.branches = nn.ModuleDict(
            {
                name: SpikingBlock(make_synapse(spec, COORDS, config, False), spec.channels, config)
                for name in modalities
            }
        )

    def encode(self, encoded: torch.Tensor, time_steps: int) -> torch.Tensor:
        """(N, 3·M, F, V) modalities -> (T, N, M·C1, F, V) spikes."""
        parts = encoded.split(COORDS, dim=1)
        return torch.cat(
            [
                branch.encode(part, time_steps)
                for branch, part in zip(self.branches.values(), parts, strict=True)
            ],
            dim=2,
        )


class MKSGN(BaseSGN):
    """MK-SGN: multimodal spiking coding, spiking multimodal fusion (SMF) whose per-modality
    weights are guided by mutual information, SA-SGC (graph conv + foldable global attention)
    and STC (spiking temporal conv with stride)."""

    modalities = MODALITIES

    def __init__(self, config: ModelConfig) -> None:
        if len(config.layers) < 2 or config.layers[1].kind != "stc":
            raise ValueError("MK-SGN fuses modalities in its second layer, which must be 'stc'")
        super().__init__(config)

    def build_coding(self, spec: LayerSpec) -> nn.Module:
        """Four modality branches."""
        return MultimodalCoding(spec, self.config, self.modalities)

    def coding_channels(self, spec: LayerSpec) -> int:
        """Concatenated spikes of all modality branches."""
        return spec.channels * len(self.modalities)

    def build_hidden_synapse(self, spec: LayerSpec, channels: int, groups: int) -> nn.Module:
        """SA-SGC for graph layers; the first temporal layer fuses modality groups."""
        return make_synapse(spec, channels, self.config, attention=True, modalities=groups)

    @property
    def fusion(self) -> FusionTemporalConv:
        """The spiking multimodal fusion layer's synapse."""
        return self.hidden[0].synapse
