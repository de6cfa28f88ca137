"""Skeleton arrays in memory and the CTR-GCN npz format (the format `data prepare` and `data synth` write)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from mksgn.atomic import atomic_savez

NUM_JOINTS = 25
MAX_BODIES = 2
COORDS = 3


@dataclass(frozen=True)
class SkeletonArrays:
    """One split of a skeleton dataset: data (N, 3, T, 25, M) float32, 0-based labels (N,), names."""

    data: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.data.ndim != 5 or self.data.shape[1] != COORDS:
            raise ValueError(f"data must be (N, 3, T, V, M), got {self.data.shape}")
        if self.labels.shape != (self.data.shape[0],):
            raise ValueError(f"labels must be ({self.data.shape[0]},), got {self.labels.shape}")
        if self.names is not None and len(self.names) != self.data.shape[0]:
            raise ValueError(f"{len(self.names)} names for {self.data.shape[0]} samples")

    def __len__(self) -> int:
        return int(self.data.shape[0])


def to_ctrgcn_layout(data: np.ndarray) -> np.ndarray:
    """(N, 3, T, 25, M) -> CTR-GCN's (N, T, M*25*3) with bodies padded to 2."""
    n, c, t, v, m = data.shape
    out = np.zeros((n, t, MAX_BODIES, v, c), dtype=np.float32)
    # One copy straight into the output layout: prepared NTU splits are several GB.
    out[:, :, :m] = data.transpose(0, 2, 4, 3, 1)
    return out.reshape(n, t, MAX_BODIES * v * c)


def from_ctrgcn_layout(x: np.ndarray) -> np.ndarray:
    """CTR-GCN's (N, T, 150) -> (N, 3, T, 25, 2)."""
    n, t, _ = x.shape
    return np.ascontiguousarray(
        x.reshape(n, t, MAX_BODIES, NUM_JOINTS, COORDS).transpose(0, 4, 1, 3, 2)
    ).astype(np.float32, copy=False)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """0-based labels -> float32 one-hot rows, as CTR-GCN stores y_train/y_test."""
    out = np.zeros((len(labels), num_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


def write_ctrgcn_npz(
    path: str | os.PathLike[str],
    train: SkeletonArrays,
    test: SkeletonArrays,
    num_classes: int,
    class_names: tuple[str, ...] | None = None,
    compressed: bool = True,
) -> None:
    """Write a CTR-GCN-compatible npz (x_train/y_train/x_test/y_test), atomically.

    Sample names (and class names) go in extra keys that CTR-GCN's loader ignores.
    """
    arrays: dict[str, np.ndarray] = {}
    for split, part in (("train", train), ("test", test)):
        arrays[f"x_{split}"] = to_ctrgcn_layout(part.data)
        arrays[f"y_{split}"] = one_hot(part.labels, num_classes)
        if part.names is not None:
            arrays[f"names_{split}"] = np.array(part.names, dtype=np.str_)
    if class_names is not None:
        arrays["class_names"] = np.array(class_names, dtype=np.str_)
    atomic_savez(path, compressed=compressed, **arrays)
