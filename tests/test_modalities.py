"""Joint, bone, joint-motion and bone-motion modalities: hand-computed values, numpy = torch, linearity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mksgn.train.data.graph import CENTER_JOINT, PARENTS
from mksgn.train.data.modalities import (
    MODALITIES,
    all_modalities,
    bone_matrix,
    bones,
    modality,
    motion,
    motion_matrix,
)


def tiny_example() -> np.ndarray:
    """x[c, t, v, m] = 100 c + t² (v + 1): constant channel offsets, quadratic motion."""
    c, t, v = np.meshgrid(np.arange(3), np.arange(4), np.arange(25), indexing="ij")
    return (100.0 * c + t**2 * (v + 1.0))[..., None].astype(np.float32)  # (3, 4, 25, 1)


def test_bones_by_hand() -> None:
    x = tiny_example()
    bone = bones(x)
    t = np.arange(4, dtype=np.float32)
    # joint 1 (spine base, 0-based 0) minus its parent joint 2: t² (1 - 2)
    np.testing.assert_array_equal(bone[0, :, 0, 0], -(t**2))
    # joint 25 (right thumb) minus joint 12 (right hand): t² (25 - 12)
    np.testing.assert_array_equal(bone[2, :, 24, 0], 13 * t**2)
    # joint 22 (left hand tip) minus joint 23 (left thumb)
    np.testing.assert_array_equal(bone[1, :, 21, 0], -(t**2))
    assert not bone[:, :, CENTER_JOINT].any()
    # the channel offsets cancel in every bone
    np.testing.assert_array_equal(bone[0], bone[1])


def test_motion_by_hand() -> None:
    x = tiny_example()
    joint_motion = motion(x)
    # (t + 1)² (v + 1) - t² (v + 1) = (2t + 1)(v + 1); the last frame is zero
    np.testing.assert_array_equal(joint_motion[1, :, 4, 0], [5.0, 15.0, 25.0, 0.0])
    bone_motion = modality(x, "bone_motion")
    # joint 25's bone is 13 t²: its motion is 13 (2t + 1)
    np.testing.assert_array_equal(bone_motion[0, :, 24, 0], [13.0, 39.0, 65.0, 0.0])
    assert not bone_motion[:, :, CENTER_JOINT].any()


def test_numpy_and_torch_agree_and_torch_keeps_gradients() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 7, 25, 2)).astype(np.float32)
    tensor = torch.tensor(x, requires_grad=True)
    for name in MODALITIES:
        from_numpy = modality(x, name)
        from_torch = modality(tensor, name)
        assert isinstance(from_numpy, np.ndarray) and isinstance(from_torch, torch.Tensor)
        assert from_torch.shape == tensor.shape
        np.testing.assert_allclose(from_torch.detach().numpy(), from_numpy, atol=1e-6)
    modality(tensor, "bone_motion").sum().backward()
    assert tensor.grad is not None


@pytest.mark.parametrize("name", MODALITIES)
def test_modalities_are_linear(name: str) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2, 3, 9, 25, 2))
    combined = modality(2.5 * x - 0.5 * y, name)
    np.testing.assert_allclose(combined, 2.5 * modality(x, name) - 0.5 * modality(y, name))


def test_matrix_forms_match_the_functions() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 6, 25, 2)).astype(np.float32)
    by_matrix = np.einsum("wv,ctvm->ctwm", bone_matrix(), x)
    np.testing.assert_allclose(by_matrix, bones(x), atol=1e-6)
    by_matrix = np.einsum("ts,csvm->ctvm", motion_matrix(6), x)
    np.testing.assert_allclose(by_matrix, motion(x), atol=1e-6)
    assert bone_matrix()[CENTER_JOINT].sum() == 0
    assert bone_matrix()[5, PARENTS[5]] == -1


def test_all_modalities_and_errors() -> None:
    x = tiny_example()
    result = all_modalities(x)
    assert tuple(result) == MODALITIES
    for name in MODALITIES:
        np.testing.assert_array_equal(result[name], modality(x, name))
    with pytest.raises(ValueError, match="unknown modality 'angle'"):
        modality(x, "angle")
    with pytest.raises(ValueError, match=r"\(\.\.\., C, T, 25, M\)"):
        bones(np.zeros((3, 4, 24, 1)))
