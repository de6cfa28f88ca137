"""The four skeleton modalities (joint, bone, joint motion, bone motion), CTR-GCN style.

Every function takes numpy arrays or torch tensors shaped (..., C, T, V, M) (frames on axis -3,
joints on axis -2) and returns the same kind. All four are linear in the joint coordinates,
which is what lets a model fold them into its first (non-spiking) layer.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from mksgn.train.data.layout import NTU_25, SkeletonLayout

MODALITIES = ("joint", "bone", "joint_motion", "bone_motion")

Array = Any  # np.ndarray or torch.Tensor; torch is only imported by callers that use it


def _is_tensor(x: Array) -> bool:
    torch = sys.modules.get("torch")  # a tensor implies torch is already imported
    return torch is not None and isinstance(x, torch.Tensor)


def _check_shape(x: Array, joints: int | None = None) -> None:
    """(..., C, T, V, M) with V = `joints` when given."""
    if x.ndim < 4 or (joints is not None and x.shape[-2] != joints):
        raise ValueError(
            f"expected skeletons shaped (..., C, T, {joints or 'V'}, M), got {tuple(x.shape)}"
        )


def bones(x: Array, layout: SkeletonLayout = NTU_25) -> Array:
    """Bone of joint v = x[v] - x[parent(v)] for each inward pair; the centre's bone is 0."""
    _check_shape(x, layout.num_joints)
    return x - x[..., list(layout.parents), :]


def motion(x: Array) -> Array:
    """m[t] = x[t + 1] - x[t] along frames (axis -3); the last frame is 0.

    On zero-padded clips the last valid frame gets -x (as in CTR-GCN): take motion after
    crop_resize, whose output has no padding.
    """
    _check_shape(x)
    difference = x[..., 1:, :, :] - x[..., :-1, :, :]
    if _is_tensor(x):
        from torch.nn import functional

        # pad counts run from the last axis: (M, M, V, V, T before, T after)
        return functional.pad(difference, (0, 0, 0, 0, 0, 1))
    out = np.zeros_like(x)
    out[..., :-1, :, :] = difference
    return out


def modality(x: Array, name: str, layout: SkeletonLayout = NTU_25) -> Array:
    """One modality of joints x, by name (see MODALITIES)."""
    if name == "joint":
        return x
    if name == "bone":
        return bones(x, layout)
    if name == "joint_motion":
        return motion(x)
    if name == "bone_motion":
        return motion(bones(x, layout))
    raise ValueError(f"unknown modality {name!r}; choose one of {', '.join(MODALITIES)}")


def all_modalities(x: Array, layout: SkeletonLayout = NTU_25) -> dict[str, Array]:
    """{name: modality(x, name)} for the four modalities, in MODALITIES order."""
    bone = bones(x, layout)
    return {"joint": x, "bone": bone, "joint_motion": motion(x), "bone_motion": motion(bone)}


def bone_matrix(layout: SkeletonLayout = NTU_25) -> np.ndarray:
    """(V, V) B with bones(x)[..., w, :] = sum_v B[w, v] x[..., v, :] (float32)."""
    return layout.bone_matrix()


def motion_matrix(frames: int) -> np.ndarray:
    """(frames, frames) D with motion(x)[..., t, :, :] = sum_s D[t, s] x[..., s, :, :]."""
    matrix = np.zeros((frames, frames), dtype=np.float32)
    steps = np.arange(frames - 1)
    matrix[steps, steps + 1] = 1.0
    matrix[steps, steps] = -1.0
    return matrix
