"""CTR-GCN's training-time sampling: crop the valid frames, resize to a fixed length, rotate.

Works on one sample (C, T, V, M) as numpy. Follows CTR-GCN's feeders/tools.py
(`valid_crop_resize`, `random_rot`); where it differs, it says so.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional

# CTR-GCN never crops a random window shorter than 64 frames (or than the clip, if shorter).
CTRGCN_MIN_CROP_FRAMES = 64


def valid_frames(x: np.ndarray) -> int:
    """Frames up to and including the last frame with any non-zero value (0 if all zero).

    CTR-GCN counts the non-zero frames instead; the two agree on zero-padded clips, and this
    one keeps an all-zero frame inside a clip (a tracking dropout) in place.
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"expected one sample shaped (C, T, V, M), got {x.shape}")
    return int(valid_lengths(x[None])[0])


def valid_lengths(data: np.ndarray) -> np.ndarray:
    """valid_frames of every sample of (N, C, T, V, M) -> (N,) int."""
    present = np.any(data != 0, axis=(1, 3, 4))  # (N, T)
    last = data.shape[2] - np.argmax(present[:, ::-1], axis=1)
    return np.where(present.any(axis=1), last, 0)


def _resize_frames(clip: np.ndarray, out_frames: int) -> np.ndarray:
    """Linear interpolation over frames (align_corners=False, as CTR-GCN's trilinear resize)."""
    channels, frames, joints, bodies = clip.shape
    rows = torch.from_numpy(np.ascontiguousarray(clip.transpose(0, 2, 3, 1), dtype=np.float32))
    resized = functional.interpolate(
        rows.reshape(1, channels * joints * bodies, frames),
        size=out_frames,
        mode="linear",
        align_corners=False,
    )
    return resized.reshape(channels, joints, bodies, out_frames).numpy().transpose(0, 3, 1, 2)


def crop_resize(
    x: np.ndarray,
    out_frames: int,
    ratio: float | tuple[float, float],
    rng: np.random.Generator | None = None,
    min_crop_frames: int = CTRGCN_MIN_CROP_FRAMES,
) -> np.ndarray:
    """Crop the valid frames of (C, T, V, M) and resize them to (C, out_frames, V, M) float32.

    A float ratio p takes the centred p share of the valid frames (test time, e.g. 0.95).
    A (low, high) tuple draws p uniformly from [low, high] with `rng` (a fresh unseeded
    generator when None) and crops floor(p · valid) frames, but at least `min_crop_frames`
    and at most all valid frames, at a random offset (training time). A clip without any
    non-zero frame comes back as zeros.
    """
    x = np.asarray(x, dtype=np.float32)
    if out_frames < 1:
        raise ValueError(f"out_frames must be at least 1, got {out_frames}")
    valid = valid_frames(x)
    channels, _, joints, bodies = x.shape
    if valid == 0:
        return np.zeros((channels, out_frames, joints, bodies), dtype=np.float32)

    if isinstance(ratio, tuple):
        low, high = ratio
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop ratio range must satisfy 0 < low <= high <= 1, got {ratio}")
        rng = rng if rng is not None else np.random.default_rng()
        share = rng.uniform(low, high)
        length = min(max(math.floor(valid * share), min_crop_frames), valid)
        start = int(rng.integers(0, valid - length + 1))
    else:
        if not 0 < ratio <= 1:
            raise ValueError(f"crop ratio must be in (0, 1], got {ratio}")
        start = int((1 - ratio) * valid / 2)
        # A very short clip would otherwise be cropped to nothing.
        length = max(valid - 2 * start, 1)
        start = min(start, valid - length)
    clip = x[:, start : start + length]
    return np.ascontiguousarray(_resize_frames(clip, out_frames), dtype=np.float32)


def rotation_matrix(angles: np.ndarray) -> np.ndarray:
    """(3, 3) rotation Rz · Ry · Rx for angles (ax, ay, az) in radians, as CTR-GCN's `_rot`."""
    cos, sin = np.cos(angles), np.sin(angles)
    about_x = np.array([[1, 0, 0], [0, cos[0], sin[0]], [0, -sin[0], cos[0]]])
    about_y = np.array([[cos[1], 0, -sin[1]], [0, 1, 0], [sin[1], 0, cos[1]]])
    about_z = np.array([[cos[2], sin[2], 0], [-sin[2], cos[2], 0], [0, 0, 1]])
    return about_z @ about_y @ about_x


def random_rotation(
    x: np.ndarray, max_angle_rad: float, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Rotate every joint of (3, T, V, M) about the origin by angles uniform in ±max per axis."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4 or x.shape[0] != 3:
        raise ValueError(f"expected one sample shaped (3, T, V, M), got {x.shape}")
    rng = rng if rng is not None else np.random.default_rng()
    angles = rng.uniform(-max_angle_rad, max_angle_rad, size=3)
    rotation = rotation_matrix(angles).astype(np.float32)
    return np.einsum("ij,jtvm->itvm", rotation, x).astype(np.float32, copy=False)


class TrainTransform:
    """Training sampling: random crop of [0.5, 1] of the valid frames, resize, random rotation
    (up to `rotation` radians per axis) and, with `scale` s > 0, a random uniform scaling by a
    factor in [1 - s, 1 + s] (CTR-GCN's NW-UCLA feeder draws rotations up to 60 degrees about x
    and y and scales in [0.5, 1.5]: views differ more across NW-UCLA's cameras than in NTU).

    Draws from its own generator, so a given seed gives the same sequence of outputs.
    """

    def __init__(
        self,
        frames: int = 64,
        crop: tuple[float, float] = (0.5, 1.0),
        rotation: float = 0.3,
        seed: int | None = None,
        min_crop_frames: int = CTRGCN_MIN_CROP_FRAMES,
        scale: float = 0.0,
    ) -> None:
        if not 0.0 <= scale < 1.0:
            raise ValueError(f"scale must lie in [0, 1), got {scale}")
        self.frames, self.crop, self.rotation, self.scale = frames, tuple(crop), rotation, scale
        self.min_crop_frames = min_crop_frames
        self.rng = np.random.default_rng(seed)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(3, T, V, M) -> (3, frames, V, M) float32."""
        out = crop_resize(x, self.frames, self.crop, self.rng, self.min_crop_frames)
        if self.rotation > 0:
            out = random_rotation(out, self.rotation, self.rng)
        if self.scale > 0:
            out = out * np.float32(self.rng.uniform(1.0 - self.scale, 1.0 + self.scale))
        return out


class TestTransform:
    """Test sampling: the centred `crop` share of the valid frames resized to `frames`."""

    __test__ = False  # not a pytest test class despite its name

    def __init__(self, frames: int = 64, crop: float = 0.95) -> None:
        self.frames, self.crop = frames, crop

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(3, T, V, M) -> (3, frames, V, M) float32."""
        return crop_resize(x, self.frames, self.crop)
