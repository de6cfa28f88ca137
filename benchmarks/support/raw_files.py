"""Raw NTU RGB+D files for tests and benchmarks: .skeleton captures that look real, 70-100
frames, one or two performers standing about 3 m from the camera and moving, Kinect jitter, some
leading frames without a body and, in some files, a short-lived ghost body that denoising has to
remove."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mksgn.train.data.skeleton_file import write_skeleton_file

# Kinect v2 joints of a person standing 3 m in front of the camera (metres, 1-based order).
STANDING_POSE = np.array(
    [
        (0.00, 0.00, 3.00), (0.00, 0.30, 3.00), (0.00, 0.55, 3.00), (0.00, 0.70, 3.00),
        (-0.18, 0.50, 3.00), (-0.22, 0.25, 3.00), (-0.24, 0.02, 3.00), (-0.25, -0.05, 3.00),
        (0.18, 0.50, 3.00), (0.22, 0.25, 3.00), (0.24, 0.02, 3.00), (0.25, -0.05, 3.00),
        (-0.10, -0.02, 3.00), (-0.12, -0.45, 3.00), (-0.13, -0.85, 3.00), (-0.13, -0.90, 2.90),
        (0.10, -0.02, 3.00), (0.12, -0.45, 3.00), (0.13, -0.85, 3.00), (0.13, -0.90, 2.90),
        (0.00, 0.48, 3.00), (-0.26, -0.12, 3.00), (-0.22, -0.08, 3.00), (0.26, -0.12, 3.00),
        (0.22, -0.08, 3.00),
    ],
    dtype=np.float64,
)  # fmt: skip
ARM_JOINTS = [5, 6, 7, 21, 22]  # 0-based: left elbow, wrist, hand, hand tip, thumb


def realistic_sequence(rng: np.random.Generator, frames: int, bodies: int) -> np.ndarray:
    """One capture (frames, bodies, 25, 3): performers waving an arm, walking a little, jitter."""
    t = np.linspace(0.0, 2.0 * np.pi, frames)[:, None]
    out = np.zeros((frames, bodies, 25, 3))
    for body in range(bodies):
        pose = STANDING_POSE + np.array([0.9 * body - 0.45 * (bodies - 1), 0.0, 0.3 * body])
        sequence = np.repeat(pose[None], frames, axis=0)
        sequence[:, ARM_JOINTS, 1] += 0.3 * np.sin(rng.uniform(1, 3) * t + rng.uniform(0, 6))
        sequence[:, :, 0] += rng.uniform(-0.2, 0.2) * t / (2 * np.pi)  # drift while acting
        out[:, body] = sequence + rng.normal(0.0, 0.01, sequence.shape)
    return out


def write_realistic_raw_files(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """Write `count` NTU-like .skeleton files with NTU60 names into `folder`."""
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        action = index % 60 + 1
        bodies = 2 if action >= 50 else 1  # NTU60 actions 50-60 are mutual actions
        frames = int(rng.integers(70, 101))
        joints = realistic_sequence(rng, frames, bodies)
        joints[: int(rng.integers(0, 4))] = 0  # the sensor often finds nobody at first
        if rng.random() < 0.2:  # a ghost body for a few frames, wide and flat
            ghost = np.zeros((frames, 1, 25, 3))
            start = int(rng.integers(0, frames - 8))
            ghost[start : start + 6, 0] = rng.uniform([-1, -0.1, 2], [1, 0.1, 4], (6, 25, 3))
            joints = np.concatenate([joints, ghost], axis=1)
        name = (
            f"S{index // 4000 % 17 + 1:03d}C{index % 3 + 1:03d}P{index // 60 % 40 + 1:03d}"
            f"R{index // 2400 % 2 + 1:03d}A{action:03d}"
        )
        path = folder / f"{name}.skeleton"
        write_skeleton_file(path, joints)
        paths.append(path)
    return paths
