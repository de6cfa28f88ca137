"""GCN-to-SGN knowledge distillation: soft labels (temperature-softened KL) plus intermediate
feature distillation through a feature translation module.

Default layers: the student's "layer4" (the SGN's fourth spiking layer, time-averaged spikes, after
the first temporal stride) is matched to the deepest teacher block with the same frame resolution
(`default_teacher_layer`): both then describe the same frames and nodes, so the translation is a
1×1 convolution and no temporal pooling blurs the target. Any other pair can be named; when frame
counts differ the translation pools the student's frames adaptively to the teacher's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from mksgn.errors import MksgnError
from mksgn.train.checkpoint import load_model
from mksgn.train.models.config import ModelConfig
from mksgn.train.models.output import ModelOutput

DEFAULT_STUDENT_LAYER = "layer4"


class FeatureTranslation(nn.Module):
    """Maps student features (N, C_s, F_s, V) to a teacher layer's shape (N, C_t, F_t, V_t):
    adaptive average pooling over frames (and nodes) when they differ, then 1×1 conv + BN."""

    def __init__(
        self, student_channels: int, teacher_channels: int, teacher_frames: int, teacher_nodes: int
    ) -> None:
        super().__init__()
        self.target_size = (teacher_frames, teacher_nodes)
        self.project = nn.Conv2d(student_channels, teacher_channels, kernel_size=1, bias=False)
        self.norm = nn.BatchNorm2d(teacher_channels)

    def forward(self, student_feature: torch.Tensor) -> torch.Tensor:
        """(N, C_s, F_s, V_s) -> (N, C_t, F_t, V_t)."""
        if tuple(student_feature.shape[-2:]) != self.target_size:
            student_feature = F.adaptive_avg_pool2d(student_feature, self.target_size)
        return self.norm(self.project(student_feature))


@dataclass(frozen=True)
class DistillationWeights:
    """Loss weights: total = CE + kd_weight · T² · KL + feature_weight · MSE."""

    temperature: float = 4.0
    kd_weight: float = 1.0
    feature_weight: float = 1.0


class DistillationLoss(nn.Module):
    """CE(student, labels) + kd_weight · T² · KL(softmax(teacher/T) ‖ softmax(student/T))
    + feature_weight · MSE(translation(student feature), teacher feature)."""

    def __init__(
        self,
        translation: nn.Module,
        weights: DistillationWeights,
        student_layer: str,
        teacher_layer: str,
    ) -> None:
        super().__init__()
        if weights.temperature <= 0:
            raise MksgnError(f"KD temperature must be positive, got {weights.temperature}")
        self.translation = translation
        self.weights = weights
        self.student_layer = student_layer
        self.teacher_layer = teacher_layer

    def forward(
        self, student: ModelOutput, teacher: ModelOutput, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss and its parts (for logging)."""
        temperature = self.weights.temperature
        cross_entropy = F.cross_entropy(student.logits, labels)
        soft_targets = F.softmax(teacher.logits.detach() / temperature, dim=1)
        kl = F.kl_div(
            F.log_softmax(student.logits / temperature, dim=1), soft_targets, reduction="batchmean"
        )
        translated = self.translation(student.features[self.student_layer])
        feature = F.mse_loss(translated, teacher.features[self.teacher_layer].detach())
        total = (
            cross_entropy
            + self.weights.kd_weight * temperature**2 * kl
            + self.weights.feature_weight * feature
        )
        parts = {"ce": float(cross_entropy), "kl": float(kl), "feature": float(feature)}
        return total, parts


def default_teacher_layer(
    teacher_features: dict[str, torch.Tensor], student_feature: torch.Tensor
) -> str:
    """The deepest teacher block at the student feature's frame resolution (else the deepest)."""
    names = list(teacher_features)
    same_frames = [n for n in names if teacher_features[n].shape[2] == student_feature.shape[2]]
    return (same_frames or names)[-1]


def load_teacher(path: str | Path, num_classes: int, config: ModelConfig) -> nn.Module:
    """A frozen GCN teacher (eval mode, no gradients) fit for the data the student trains on."""
    teacher, teacher_config, _ = load_model(path)
    if teacher_config.model != "gcn":
        raise MksgnError(
            f"teacher checkpoint {path} holds a {teacher_config.model!r} model; the teacher must be "
            "a 'gcn' model (train one with 'mksgn train --model gcn')"
        )
    if teacher_config.num_classes != num_classes:
        raise MksgnError(
            f"teacher checkpoint {path} was trained for {teacher_config.num_classes} classes but the "
            f"data has {num_classes}: use a teacher trained on the same dataset"
        )
    if teacher_config.layout != config.layout:
        raise MksgnError(
            f"teacher checkpoint {path} was trained on skeleton layout "
            f"{teacher_config.skeleton_layout.describe()} but the data has layout "
            f"{config.skeleton_layout.describe()}: use a teacher trained on the same dataset"
        )
    if (teacher_config.joints, teacher_config.bodies) != (config.joints, config.bodies):
        raise MksgnError(
            f"teacher checkpoint {path} expects {teacher_config.joints} joints × "
            f"{teacher_config.bodies} bodies but the data has {config.joints} × {config.bodies}"
        )
    teacher.eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


def build_translation(
    student_feature: torch.Tensor, teacher_feature: torch.Tensor
) -> FeatureTranslation:
    """A translation module sized from one batch of student and teacher features."""
    _, student_channels, _, _ = student_feature.shape
    _, teacher_channels, teacher_frames, teacher_nodes = teacher_feature.shape
    return FeatureTranslation(student_channels, teacher_channels, teacher_frames, teacher_nodes)
