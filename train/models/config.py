"""Model configuration: plain, JSON-able data that checkpoints store next to the weights."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mksgn.errors import MksgnError
from mksgn.train.data.layout import SkeletonLayout, layout_from_dict

MODEL_NAMES = ("gcn", "base-sgn", "mk-sgn")
# SA-SGC attention support of the presets (see ModelConfig.attention_hops; measured in the README)
DEFAULT_ATTENTION_HOPS = 2
PRESET_NAMES = ("tiny", "paper")


@dataclass(frozen=True)
class LayerSpec:
    """One spiking (or, in the teacher, ReLU) layer: kind, output channels, temporal stride."""

    kind: str  # "sgc" spatial graph conv, "stc" temporal conv, "gcn-block" (teacher only)
    channels: int
    stride: int = 1


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; stored in checkpoints as a dict."""

    model: str
    num_classes: int
    frames: int = 64
    joints: int = 25
    bodies: int = 2
    time_steps: int = 4
    layers: tuple[LayerSpec, ...] = ()
    temporal_kernel: int = 9
    beta: float = 0.5
    threshold: float = 1.0
    # Fast-sigmoid surrogate slope. Quick synthetic set, Base-SGN with the readout norm, one seed:
    # slope 25 fitted 0.75 of the training set, slope 5 0.92 (test 0.65 -> 0.80): the gradient
    # of a steep surrogate vanishes for membranes far from the threshold, ~10x per layer.
    surrogate_slope: float = 5.0
    preset: str = "tiny"
    # SA-SGC attention support: joints within this many skeleton edges (None: every joint, as
    # models saved before supports existed were trained).
    attention_hops: int | None = None
    # Spiking students: batch norm of the pooled spike rates before the readout (folds into the
    # readout's weights at export). False: no such layer, as in models saved before it existed.
    readout_norm: bool = False
    # The skeleton layout as plain data (SkeletonLayout.to_dict); None (checkpoints written before
    # layouts) becomes ntu-25. `joints` always follows the layout.
    layout: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        layout = self.skeleton_layout  # validates a stored layout
        object.__setattr__(self, "layout", layout.to_dict())
        object.__setattr__(self, "joints", layout.num_joints)
        if self.model not in MODEL_NAMES:
            raise MksgnError(
                f"unknown model {self.model!r}; choose one of {', '.join(MODEL_NAMES)}"
            )
        if self.num_classes < 2:
            raise MksgnError(f"num_classes must be at least 2, got {self.num_classes}")
        if self.time_steps < 1:
            raise MksgnError(f"time_steps must be at least 1, got {self.time_steps}")
        if self.attention_hops is not None and self.attention_hops < 0:
            raise MksgnError(f"attention_hops must be >= 0, got {self.attention_hops}")
        if not 0.0 <= self.beta <= 1.0:
            raise MksgnError(f"beta must lie in [0, 1], got {self.beta}")

    @property
    def skeleton_layout(self) -> SkeletonLayout:
        """The layout the model's graph, bones and input encoding come from."""
        return layout_from_dict(self.layout)

    @property
    def nodes(self) -> int:
        """Graph nodes per frame: bodies are extra nodes of one graph, so one pass serves M actors."""
        return self.joints * self.bodies

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, numbers, strings) for JSON and weights-only checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild from `to_dict()` output, rejecting unknown keys."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise MksgnError(f"model config has unknown keys {sorted(unknown)}")
        values = dict(data)
        values["layers"] = tuple(LayerSpec(**layer) for layer in values.get("layers", ()))
        return cls(**values)


def preset_config(
    model: str, preset: str, num_classes: int, time_steps: int = 4, frames: int | None = None
) -> ModelConfig:
    """The `tiny` (trains on 2 CPU cores in minutes) or `paper` (6 spiking layers, up to 256
    channels, 64 frames, T = 4) configuration of a model."""
    if preset not in PRESET_NAMES:
        raise MksgnError(f"unknown preset {preset!r}; choose one of {', '.join(PRESET_NAMES)}")
    paper = preset == "paper"
    c1, c2, c3 = (64, 128, 256) if paper else (16, 32, 64)
    if model == "gcn":
        # ST-GCN-like teacher: 10 graph-conv + temporal-conv blocks (tiny: 6 narrower blocks).
        widths = (
            [(c1, 1)] * 4 + [(c2, 2)] + [(c2, 1)] * 2 + [(c3, 2)] + [(c3, 1)] * 2
            if paper
            else [(c1, 1), (c1, 1), (c2, 2), (c2, 1), (c3, 2), (c3, 1)]
        )
        layers = tuple(LayerSpec("gcn-block", c, s) for c, s in widths)
        kernel = 9 if paper else 5
    else:
        # Six spiking layers: spatial graph conv and temporal conv alternate; frames halve twice.
        layers = (
            LayerSpec("sgc", c1),
            LayerSpec("stc", c1),
            LayerSpec("sgc", c2),
            LayerSpec("stc", c2, stride=2),
            LayerSpec("sgc", c3),
            LayerSpec("stc", c3, stride=2),
        )
        kernel = 9 if paper else 5
    return ModelConfig(
        model=model,
        num_classes=num_classes,
        frames=frames if frames is not None else (64 if paper else 32),
        time_steps=time_steps,
        layers=layers,
        temporal_kernel=kernel,
        preset=preset,
        attention_hops=None if model == "gcn" else DEFAULT_ATTENTION_HOPS,
        readout_norm=model != "gcn",
    )
