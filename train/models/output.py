"""What every mksgn model returns, and the input encoding they share."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mksgn.train.data.layout import NTU_25, SkeletonLayout
from mksgn.train.data.modalities import modality


@dataclass
class ModelOutput:
    """Logits (N, classes); named intermediate features (N, C, F, V) for feature distillation;
    spike trains (T, N, C, F, V) of every spiking layer (empty for the GCN teacher)."""

    logits: torch.Tensor
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    spikes: dict[str, torch.Tensor] = field(default_factory=dict)

    def firing_rates(self) -> dict[str, float]:
        """Mean spikes per neuron per time step, per spiking layer."""
        return {name: float(s.detach().float().mean()) for name, s in self.spikes.items()}


def encode_input(
    x: torch.Tensor, modalities: tuple[str, ...], layout: SkeletonLayout = NTU_25
) -> torch.Tensor:
    """(N, 3, F, V, M) joints -> (N, 3·len(modalities), F, M·V): modalities stacked on channels,
    bodies laid out as extra graph nodes (node = body · V + joint)."""
    if x.ndim != 5 or x.shape[1] != 3 or x.shape[3] != layout.num_joints:
        raise ValueError(
            f"expected joints shaped (N, 3, F, {layout.num_joints}, M), got {tuple(x.shape)}"
        )
    stacked = torch.cat([modality(x, name, layout) for name in modalities], dim=1)
    return stacked.permute(0, 1, 2, 4, 3).flatten(3)
