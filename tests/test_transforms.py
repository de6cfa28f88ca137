"""CTR-GCN-style sampling: valid frames, crop + resize, random rotation, seeded transforms."""

from __future__ import annotations

import numpy as np
import pytest

from mksgn.train.data.modalities import bones
from mksgn.train.data.transforms import (
    TestTransform,
    TrainTransform,
    crop_resize,
    random_rotation,
    rotation_matrix,
    valid_frames,
)


def ramp(valid: int, total: int) -> np.ndarray:
    """(3, total, 25, 2): every value of frame t is t + 1 for t < valid, zero padding after."""
    x = np.zeros((3, total, 25, 2), dtype=np.float32)
    x[:, :valid] = (np.arange(valid, dtype=np.float32) + 1)[None, :, None, None]
    return x


def random_skeleton(seed: int, frames: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(3, frames, 25, 2)).astype(np.float32)


def test_valid_frames() -> None:
    assert valid_frames(np.zeros((3, 5, 25, 2))) == 0
    assert valid_frames(ramp(7, 10)) == 7
    with_gap = ramp(7, 10)
    with_gap[:, 3] = 0  # a dropped frame inside the clip still counts
    assert valid_frames(with_gap) == 7
    only_second_body = np.zeros((3, 10, 25, 2))
    only_second_body[1, 4, 3, 1] = 0.5
    assert valid_frames(only_second_body) == 5


def test_centred_crop_resize_by_hand() -> None:
    x = ramp(10, 12)
    # ratio 0.6 of 10 valid frames: drop int(0.4 * 10 / 2) = 2 frames each side -> values 3..8
    same = crop_resize(x, 6, 0.6)
    assert same.shape == (3, 6, 25, 2) and same.dtype == np.float32
    np.testing.assert_allclose(same[0, :, 0, 0], np.arange(3, 9), atol=1e-6)
    # halving with align_corners=False samples at source positions 2i + 0.5
    half = crop_resize(x, 3, 0.6)
    np.testing.assert_allclose(half[2, :, 7, 1], [3.5, 5.5, 7.5], atol=1e-6)
    # doubling: positions i/2 - 1/4, clamped at both ends
    double = crop_resize(x, 12, 0.6)
    np.testing.assert_allclose(double[1, :4, 0, 0], [3.0, 3.25, 3.75, 4.25], atol=1e-6)
    assert double[1, -1, 0, 0] == pytest.approx(8.0)
    # the whole clip, padding excluded
    np.testing.assert_allclose(crop_resize(x, 10, 1.0)[0, :, 0, 0], np.arange(1, 11), atol=1e-6)


def test_random_crop_takes_a_contiguous_window_of_the_valid_frames() -> None:
    x = ramp(100, 120)
    rng = np.random.default_rng(0)
    spans = []
    for _ in range(20):
        out = crop_resize(x, 32, (0.5, 1.0), rng, min_crop_frames=0)[0, :, 0, 0]
        assert np.all(np.diff(out) > 0)  # in order, no padding resized in
        assert out[0] >= 1 and out[-1] <= 100
        spans.append(out[-1] - out[0])
    assert min(spans) >= 0.5 * 100 * 31 / 32 - 2 and max(spans) <= 100
    assert max(spans) - min(spans) > 5  # the ratio really is random
    # CTR-GCN's floor: never fewer than 64 frames from a clip that has them
    floored = crop_resize(x, 32, (0.5, 0.5), rng)[0, :, 0, 0]
    assert floored[-1] - floored[0] >= 64 * 31 / 32 - 2


def test_empty_clip_and_bad_ratios() -> None:
    out = crop_resize(np.zeros((3, 20, 25, 2)), 16, (0.5, 1.0), np.random.default_rng(0))
    assert out.shape == (3, 16, 25, 2) and not out.any()
    with pytest.raises(ValueError, match="crop ratio"):
        crop_resize(ramp(10, 10), 8, 1.5)
    with pytest.raises(ValueError, match="low <= high"):
        crop_resize(ramp(10, 10), 8, (0.9, 0.5), np.random.default_rng(0))


def test_rotation_preserves_bone_lengths_and_absent_bodies() -> None:
    x = random_skeleton(3)
    x[:, :, :, 1] = 0.0
    rotated = random_rotation(x, 0.3, np.random.default_rng(5))
    assert rotated.shape == x.shape and rotated.dtype == np.float32
    np.testing.assert_allclose(
        np.linalg.norm(bones(rotated), axis=0), np.linalg.norm(bones(x), axis=0), atol=1e-5
    )
    assert not rotated[:, :, :, 1].any()
    assert not np.allclose(rotated, x)
    np.testing.assert_allclose(random_rotation(x, 0.0, np.random.default_rng(0)), x, atol=1e-6)


def test_rotation_angle_is_bounded() -> None:
    matrix = rotation_matrix(np.array([0.1, -0.2, 0.3]))
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(matrix) == pytest.approx(1.0)
    x = random_skeleton(4, frames=4)
    for seed in range(10):
        rotated = random_rotation(x, 0.1, np.random.default_rng(seed))
        cosine = (x * rotated).sum(0) / (
            np.linalg.norm(x, axis=0) * np.linalg.norm(rotated, axis=0)
        )
        assert np.arccos(np.clip(cosine, -1, 1)).max() <= 0.3 + 1e-5  # three turns of <= 0.1


def test_transforms_are_deterministic_by_seed() -> None:
    x = random_skeleton(7, frames=150)
    first, again, other = TrainTransform(seed=1), TrainTransform(seed=1), TrainTransform(seed=2)
    outputs = [first(x) for _ in range(3)]
    for out in outputs:
        assert out.shape == (3, 64, 25, 2) and out.dtype == np.float32
    for out in outputs:
        np.testing.assert_array_equal(out, again(x))
    assert not np.allclose(outputs[0], other(x))
    assert not np.allclose(outputs[0], outputs[1])  # fresh draws for every sample
    test = TestTransform()
    np.testing.assert_array_equal(test(x), test(x))
    np.testing.assert_array_equal(test(x), crop_resize(x, 64, 0.95))
    assert TestTransform(frames=32, crop=1.0)(x).shape == (3, 32, 25, 2)


def test_scaling_is_uniform_over_axes_and_bounded() -> None:
    x = np.random.default_rng(0).normal(size=(3, 20, 25, 2)).astype(np.float32)
    plain = TrainTransform(frames=20, crop=(1.0, 1.0), rotation=0.0, seed=3)(x)
    scaled = TrainTransform(frames=20, crop=(1.0, 1.0), rotation=0.0, seed=3, scale=0.5)(x)
    factor = scaled / np.where(plain == 0, 1, plain)
    factor = factor[plain != 0]
    assert np.allclose(factor, factor[0], rtol=1e-5) and 0.5 <= factor[0] <= 1.5
    assert not np.allclose(factor[0], 1.0)
