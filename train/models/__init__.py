"""Models: the GCN teacher, Base-SGN and MK-SGN, built from a `ModelConfig`."""

from __future__ import annotations

from torch import nn

from mksgn.train.models.config import MODEL_NAMES, ModelConfig, preset_config
from mksgn.train.models.gcn import GCNTeacher
from mksgn.train.models.sgn import MKSGN, BaseSGN

__all__ = ["MODEL_NAMES", "ModelConfig", "build_model", "preset_config"]

MODEL_CLASSES: dict[str, type[nn.Module]] = {
    "gcn": GCNTeacher,
    "base-sgn": BaseSGN,
    "mk-sgn": MKSGN,
}


def build_model(config: ModelConfig) -> nn.Module:
    """Instantiate the model a config describes."""
    return MODEL_CLASSES[config.model](config)
