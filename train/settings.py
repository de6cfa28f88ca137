"""What a `mksgn train` run is configured with: TrainSettings (optimiser, schedule, augmentation,
distillation, device) with its choices and defaults, the settings a resumed run may change, the
model config sized for a dataset, and the optimiser and learning-rate schedule the settings name.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mksgn.errors import MksgnError
from mksgn.train.data.formats import open_dataset
from mksgn.train.data.layout import SkeletonLayout
from mksgn.train.distillation import DEFAULT_STUDENT_LAYER
from mksgn.train.models.config import ModelConfig, preset_config

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "step")
DEFAULT_LR = {"adamw": 2e-3, "sgd": 0.05}
DEFAULT_WEIGHT_DECAY = {"adamw": 1e-2, "sgd": 4e-4}
# Settings that may change between a run and its resumption without changing what it computes
# (epochs: a resumed run may be extended; the schedule then follows the new length).
RESUMABLE_CHANGES = frozenset({"epochs", "device", "workers", "eval_batch_size"})


@dataclass
class TrainSettings:
    """Optimisation, schedule, reproducibility, device and distillation settings of a run.

    `lr` and `weight_decay` default (None) per optimiser: AdamW 2e-3 / 1e-2, SGD 0.05 / 4e-4
    (SGD uses Nesterov momentum 0.9). The step schedule multiplies the rate by `step_gamma` at
    each fraction of the epochs in `step_milestones`; warm-up ramps it linearly over the first
    `warmup_epochs` epochs. `mi_bins` and `mi_mix` set MK-SGN's fusion weights
    (see train/mutual_information.py).
    """

    epochs: int = 30
    batch_size: int = 16
    lr: float | None = None
    optimizer: str = "adamw"
    momentum: float = 0.9
    weight_decay: float | None = None
    schedule: str = "cosine"
    warmup_epochs: int = 1
    step_milestones: tuple[float, ...] = (0.6, 0.8)
    step_gamma: float = 0.1
    seed: int = 0
    benchmark: str | None = None  # the split table to use in a multi-benchmark PYSKL pickle
    device: str = "cpu"
    workers: int = 0
    eval_batch_size: int = 64
    # Synthetic set, tiny MK-SGN, 30 epochs: 1.0 / 1.0 / T = 4 gave 74.4 % against 81.9 % without
    # a teacher (seed 0). These weights, seeds 0-5 (benchmarks/distillation.py, class-sorted set):
    # 79.8 ± 4.2 % with the teacher, 78.3 ± 4.3 % without, +1.5 points on average but -5.0 to
    # +11.8 per seed: distillation does not hurt; that it helps is within the seed spread.
    kd_temperature: float = 2.0
    kd_weight: float = 0.5
    feature_weight: float = 0.1
    student_layer: str = DEFAULT_STUDENT_LAYER
    teacher_layer: str | None = None
    mi_bins: int = 8
    mi_mix: float = 0.5
    # Augmentation: random rotation up to this many radians per axis, random scaling by up to
    # ± this fraction (CTR-GCN's NTU recipe: 0.3 rad, no scaling).
    rotation: float = 0.3
    scale: float = 0.0
    # Training samples whose batch statistics replace the running ones before each evaluation
    # (train/batch_statistics.py); 0 keeps torch's running averages.
    bn_calibration_samples: int = 512

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise MksgnError(f"unknown optimizer {self.optimizer!r}; choose one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise MksgnError(f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")
        if self.epochs < 1 or self.batch_size < 1:
            raise MksgnError("epochs and batch size must be at least 1")
        if not 0 <= self.warmup_epochs < max(self.epochs, 1) + 1:
            raise MksgnError(f"warm-up of {self.warmup_epochs} epochs must be >= 0")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.optimizer]
        if self.weight_decay is None:
            self.weight_decay = DEFAULT_WEIGHT_DECAY[self.optimizer]
        if self.lr <= 0:
            raise MksgnError(f"learning rate must be positive, got {self.lr}")
        if self.rotation < 0 or not 0 <= self.scale < 1:
            raise MksgnError(
                f"rotation must be >= 0 and scale in [0, 1); got {self.rotation}, {self.scale}"
            )
        if self.bn_calibration_samples < 0:
            raise MksgnError(
                f"bn_calibration_samples must be >= 0, got {self.bn_calibration_samples}"
            )
        self.step_milestones = tuple(self.step_milestones)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for config.json and the checkpoint."""
        data = dataclasses.asdict(self)
        data["step_milestones"] = list(self.step_milestones)
        return data


def config_for_data(
    data_path: str | Path,
    model: str,
    preset: str,
    time_steps: int = 4,
    frames: int | None = None,
    layout: SkeletonLayout | None = None,
    benchmark: str | None = None,
) -> ModelConfig:
    """A preset model config sized for a dataset: its class count, bodies per sample and
    skeleton layout (the one it records, else `layout`, else the default for its joints)."""
    source = open_dataset(data_path, benchmark, layout)
    _, _, bodies = source.split_shape("train")
    config = preset_config(model, preset, source.num_classes, time_steps=time_steps, frames=frames)
    return dataclasses.replace(config, bodies=bodies, layout=source.layout.to_dict())


def learning_rate_factor(epoch: int, settings: TrainSettings) -> float:
    """Multiplier of the base rate during `epoch` (0-based): linear warm-up, then cosine or step."""
    warmup = settings.warmup_epochs
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    if settings.schedule == "cosine":
        span = max(settings.epochs - warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup) / span))
    passed = sum(epoch >= round(m * settings.epochs) for m in settings.step_milestones)
    return settings.step_gamma**passed


def make_optimizer(parameters: Any, settings: TrainSettings) -> torch.optim.Optimizer:
    """AdamW, or SGD with Nesterov momentum."""
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=settings.lr,
            momentum=settings.momentum,
            nesterov=True,
            weight_decay=settings.weight_decay,
        )
    return torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
