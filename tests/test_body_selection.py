"""CTR-GCN-style denoising and actor selection on hand-built bodies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mksgn.errors import MksgnError
from mksgn.train.data.body_selection import (
    NoUsableBody,
    body_motion,
    denoise_bodies,
    noisy_frame_mask,
    select_bodies,
)
from mksgn.train.data.skeleton_file import (
    BodyTrack,
    SkeletonFrames,
    read_skeleton_file,
    write_skeleton_file,
)

JOINT_INDEX = np.arange(25)


def tall_body(frames: range, x: float = 0.0, swing: float = 0.0, seed: int = 0) -> np.ndarray:
    """A person-like body: 1.7 m tall (y), 0.08 m wide (x); `swing` m of sideways sway."""
    rng = np.random.default_rng(seed)
    pose = np.stack([0.02 * (JOINT_INDEX % 5) + x, 0.07 * JOINT_INDEX - 0.8, np.full(25, 3.0)], -1)
    sway = swing * np.sin(np.arange(len(frames)) / 3.0)[:, None]
    joints = np.repeat(pose[None], len(frames), axis=0)
    joints[:, :, 0] += sway
    joints += rng.normal(0, 1e-3, joints.shape)
    return joints.astype(np.float32)


def wide_body(frames: range, seed: int = 1) -> np.ndarray:
    """A noise body: 2 m wide, 0.2 m tall (like a tracked chair or wall), jumping around."""
    rng = np.random.default_rng(seed)
    joints = rng.uniform([-1.0, -0.1, 2.0], [1.0, 0.1, 4.0], (len(frames), 25, 3))
    return joints.astype(np.float32)


def track(body_id: int, frames: range, joints: np.ndarray) -> BodyTrack:
    return BodyTrack(body_id, np.asarray(frames, dtype=np.int64), joints)


def skeleton(num_frames: int, *tracks: BodyTrack) -> SkeletonFrames:
    used = set().union(*(set(t.frames.tolist()) for t in tracks)) if tracks else set()
    return SkeletonFrames(
        path="S001C001P001R001A001.skeleton",
        num_frames=num_frames,
        num_empty_frames=num_frames - len(used),
        bodies={t.body_id: t for t in tracks},
    )


def test_motion_and_noise_measures() -> None:
    joints = np.zeros((2, 25, 3), dtype=np.float32)
    joints[1, :, 0] = 2.0  # x is 0 in half of the points and 2 in the other half: variance 1
    assert body_motion(joints) == pytest.approx(1.0)
    body = tall_body(range(3))
    assert not noisy_frame_mask(body).any()
    assert noisy_frame_mask(wide_body(range(3))).all()


def test_single_body_is_translated_and_second_slot_is_zero() -> None:
    joints = tall_body(range(30), x=0.5, swing=0.1)
    out = select_bodies(skeleton(30, track(1, range(30), joints)))
    assert out.shape == (30, 2, 25, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0], joints - joints[0, 1], atol=1e-6)
    assert np.all(out[0, 0, 1] == 0)
    assert np.all(out[:, 1] == 0)


def test_short_lived_body_is_dropped_but_twelve_frames_stay() -> None:
    main = track(1, range(40), tall_body(range(40), swing=0.01))
    blip = track(2, range(5, 16), tall_body(range(11), x=1.0, swing=0.5))  # 11 frames: noise
    out = select_bodies(skeleton(40, main, blip))
    assert np.all(out[:, 1] == 0)
    np.testing.assert_allclose(out[:, 0], main.joints - main.joints[0, 1], atol=1e-6)

    visitor = track(3, range(5, 17), tall_body(range(12), x=1.0, swing=0.001))  # 12 frames
    out = select_bodies(skeleton(40, main, visitor))
    assert np.any(out[5:17, 1] != 0) and np.all(out[:5, 1] == 0) and np.all(out[17:, 1] == 0)


def test_noisy_body_is_dropped_even_with_more_motion() -> None:
    person = track(1, range(40), tall_body(range(40), swing=0.02))
    ghost = track(2, range(40), wide_body(range(40)))
    assert body_motion(ghost.joints) > body_motion(person.joints)
    out = select_bodies(skeleton(40, ghost, person))
    np.testing.assert_allclose(out[:, 0], person.joints - person.joints[0, 1], atol=1e-6)
    assert np.all(out[:, 1] == 0)


def test_partly_noisy_body_is_ranked_by_its_clean_frames() -> None:
    calm = tall_body(range(40), swing=0.05, seed=2)
    half_noisy = tall_body(range(40), x=1.0, swing=0.0, seed=3)
    half_noisy[:10] = wide_body(range(10))  # 25 % noisy frames: kept, motion from clean frames
    bodies = [track(1, range(40), half_noisy), track(2, range(40), calm)]
    assert body_motion(half_noisy) > body_motion(calm)
    ranked = denoise_bodies(bodies)
    assert [body.body_id for body in ranked] == [2, 1]


def test_most_moving_body_becomes_actor_one() -> None:
    still = track(1, range(30), tall_body(range(30), x=-0.5, swing=0.01))
    active = track(2, range(30), tall_body(range(30), x=0.5, swing=0.3))
    out = select_bodies(skeleton(30, still, active))
    origin = active.joints[0, 1]
    np.testing.assert_allclose(out[:, 0], active.joints - origin, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], still.joints - origin, atol=1e-6)


def test_non_overlapping_body_joins_actor_one() -> None:
    first = track(1, range(40), tall_body(range(40), swing=0.3))  # most motion
    partner = track(2, range(80), tall_body(range(80), x=1.0, swing=0.1))
    successor = track(3, range(40, 80), tall_body(range(40), x=-1.0, swing=0.05))
    out = select_bodies(skeleton(80, successor, partner, first))
    origin = first.joints[0, 1]
    np.testing.assert_allclose(out[:40, 0], first.joints - origin, atol=1e-6)
    np.testing.assert_allclose(out[40:, 0], successor.joints - origin, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], partner.joints - origin, atol=1e-6)


def test_third_overlapping_body_is_left_out() -> None:
    bodies = [
        track(i, range(30), tall_body(range(30), x=i, swing=s, seed=i))
        for i, s in ((1, 0.1), (2, 0.2), (3, 0.05))
    ]
    out = select_bodies(skeleton(30, *bodies))
    origin = bodies[1].joints[0, 1]
    np.testing.assert_allclose(out[:, 0], bodies[1].joints - origin, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], bodies[0].joints - origin, atol=1e-6)
    assert select_bodies(skeleton(30, *bodies), max_bodies=1).shape == (30, 1, 25, 3)


def test_origin_is_actor_one_spine_middle_in_its_first_frame_and_absent_stays_zero() -> None:
    actor1 = track(1, range(5, 40), tall_body(range(35), x=0.3, swing=0.3))
    actor2 = track(2, range(0, 30), tall_body(range(30), x=-0.7, swing=0.05))
    out = select_bodies(skeleton(40, actor1, actor2))
    origin = actor1.joints[0, 1]  # file frame 5
    assert out.shape == (40, 2, 25, 3)
    assert np.all(out[:5, 0] == 0)  # actor 1 not there yet: not translated
    assert np.all(out[30:, 1] == 0)  # actor 2 gone
    np.testing.assert_allclose(out[5:, 0], actor1.joints - origin, atol=1e-6)
    np.testing.assert_allclose(out[:30, 1], actor2.joints - origin, atol=1e-6)
    np.testing.assert_allclose(out[5, 0, 1], 0, atol=1e-7)


def test_frames_without_a_kept_body_are_dropped() -> None:
    frames = [*range(0, 10), *range(15, 50)]  # frames 10-14 have no body
    person = track(1, frames, tall_body(frames, swing=0.1))
    ghost = track(2, range(50, 56), wide_body(range(6)))  # only in frames 50-55, dropped
    out = select_bodies(skeleton(60, person, ghost))
    assert out.shape == (45, 2, 25, 3)
    np.testing.assert_allclose(out[:, 0], person.joints - person.joints[0, 1], atol=1e-6)


def test_when_every_body_is_short_lived_they_are_all_kept() -> None:
    short_a = track(1, range(8), tall_body(range(8), swing=0.01))
    short_b = track(2, range(8), tall_body(range(8), x=1.0, swing=0.2))
    out = select_bodies(skeleton(8, short_a, short_b))
    origin = short_b.joints[0, 1]
    np.testing.assert_allclose(out[:, 0], short_b.joints - origin, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], short_a.joints - origin, atol=1e-6)


def test_no_body_at_all_is_a_clear_error() -> None:
    with pytest.raises(NoUsableBody, match="none of its 7 frames contains a body") as caught:
        select_bodies(skeleton(7))
    assert isinstance(caught.value, MksgnError)


def test_selection_on_a_written_file(tmp_path: Path) -> None:
    joints = np.zeros((50, 3, 25, 3), dtype=np.float32)
    joints[2:, 0] = tall_body(range(48), swing=0.2)
    joints[:, 1] = tall_body(range(50), x=1.0, swing=0.05)
    joints[20:25, 2] = wide_body(range(5))
    path = tmp_path / "S001C001P001R001A050.skeleton"
    write_skeleton_file(path, joints)
    out = select_bodies(read_skeleton_file(path))
    origin = joints[2, 0, 1]
    np.testing.assert_allclose(out[2:, 0], joints[2:, 0] - origin, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], joints[:, 1] - origin, atol=1e-6)
    assert np.all(out[:2, 0] == 0)
