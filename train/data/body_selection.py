"""CTR-GCN-style denoising of NTU RGB+D bodies and selection of the two main actors.

Follows CTR-GCN's data_gen/ntu (get_raw_denoised_data.py, seq_transformation.py):
1. frames without a body are dropped;
2. when a file has several body ids: bodies seen in <= 11 frames are dropped, then bodies whose
   frames are mostly "noisy" (x-range > 0.8 * y-range in >= 69.754 % of their frames) are
   dropped, never the last one; the motion of a body is the summed variance of all its joint
   positions (over frames and joints, per coordinate), lowered to that of its clean frames when
   some of its frames are noisy;
3. bodies in order of decreasing motion fill the actor slots: actor 1 is the most moving body,
   each further body joins the first actor whose frame interval it does not overlap, or is
   dropped;
4. frames in which no kept actor appears are dropped; the sequence is translated so that joint 2
   (spine middle) of actor 1 in its first frame is the origin; slots where an actor is absent stay
   zero.

Where we differ, deliberately: CTR-GCN crashes when the length filter removes every body (a clip
whose bodies are all seen in <= 11 frames); we then skip the length filter, so short clips keep
their bodies and the later stages still pick the main actors. CTR-GCN counts intervals that
touch at one frame as not overlapping (and starts actor 2's interval at frame 0); we treat any
shared frame as an overlap, so one body never overwrites another in the same frame.
"""

from __future__ import annotations

import numpy as np

from mksgn.errors import MksgnError
from mksgn.train.data.skeleton_file import NUM_JOINTS, BodyTrack, SkeletonFrames

MIN_BODY_FRAMES = 12  # bodies seen in 11 frames or fewer are tracking noise
SPREAD_RATIO = 0.8  # a frame is noisy when the body is wider (x) than 0.8 x its height (y)
NOISY_FRAME_SHARE = 0.69754  # CTR-GCN's share of noisy frames above which a body is dropped
ORIGIN_JOINT = 1  # joint 2, spine middle, 0-based


class NoUsableBody(MksgnError):
    """A skeleton file in which no frame contains a body."""


def body_motion(joints: np.ndarray) -> float:
    """Summed per-coordinate variance of all joint positions of a body, (n, 25, 3) -> float."""
    return float(np.var(joints.reshape(-1, 3).astype(np.float64), axis=0).sum())


def noisy_frame_mask(joints: np.ndarray) -> np.ndarray:
    """(n, 25, 3) -> (n,) bool: frames whose x-range exceeds 0.8 times the y-range."""
    x_range = np.ptp(joints[:, :, 0], axis=1)
    y_range = np.ptp(joints[:, :, 1], axis=1)
    return x_range > SPREAD_RATIO * y_range


def denoise_bodies(bodies: list[BodyTrack]) -> list[BodyTrack]:
    """Drop short-lived and mostly-noisy bodies; return the rest by decreasing motion."""
    if len(bodies) <= 1:
        return list(bodies)
    long_lived = [body for body in bodies if len(body.frames) >= MIN_BODY_FRAMES]
    candidates = long_lived or list(bodies)  # see the module docstring
    if len(candidates) == 1:
        return candidates

    motion = {body.body_id: body_motion(body.joints) for body in candidates}
    kept = list(candidates)
    for body in candidates:
        if len(kept) == 1:
            break
        noisy = noisy_frame_mask(body.joints)
        num_noisy = int(noisy.sum())
        if num_noisy == 0:
            continue
        if num_noisy / len(body.frames) >= NOISY_FRAME_SHARE:
            kept.remove(body)
        else:
            clean_motion = body_motion(body.joints[~noisy])
            motion[body.body_id] = min(motion[body.body_id], clean_motion)
    return sorted(kept, key=lambda body: motion[body.body_id], reverse=True)


def assign_actors(ranked: list[BodyTrack], max_bodies: int) -> list[list[BodyTrack]]:
    """Give each body (most moving first) the first actor slot whose interval it doesn't overlap."""
    slots: list[list[BodyTrack]] = [[] for _ in range(max_bodies)]
    intervals: list[tuple[int, int] | None] = [None] * max_bodies
    for body in ranked:
        start, end = int(body.frames.min()), int(body.frames.max())
        for slot, interval in enumerate(intervals):
            if interval is None or end < interval[0] or start > interval[1]:
                slots[slot].append(body)
                if interval is not None:
                    start, end = min(start, interval[0]), max(end, interval[1])
                intervals[slot] = (start, end)
                break
    return slots


def select_bodies(frames: SkeletonFrames, max_bodies: int = 2) -> np.ndarray:
    """Denoise, pick up to `max_bodies` actors and centre them: -> (T', max_bodies, 25, 3) float32.

    T' counts the frames in which a kept actor appears (frames without a body are dropped).
    """
    if max_bodies < 1:
        raise ValueError(f"max_bodies must be at least 1, got {max_bodies}")
    if not frames.bodies:
        raise NoUsableBody(
            f"{frames.path}: none of its {frames.num_frames} frames contains a body, so there is "
            "no skeleton to use (NTU lists such samples as missing skeletons)"
        )
    slots = assign_actors(denoise_bodies(list(frames.bodies.values())), max_bodies)

    kept_frames = np.unique(np.concatenate([body.frames for slot in slots for body in slot]))
    out = np.zeros((len(kept_frames), max_bodies, NUM_JOINTS, 3), dtype=np.float32)
    present = np.zeros((len(kept_frames), max_bodies), dtype=bool)
    for slot, bodies in enumerate(slots):
        for body in bodies:
            rows = np.searchsorted(kept_frames, body.frames)
            out[rows, slot] = body.joints
            present[rows, slot] = True

    first_actor_frame = int(np.argmax(present[:, 0]))  # actor 1 always has a body
    origin = out[first_actor_frame, 0, ORIGIN_JOINT].copy()
    out[present] -= origin  # absent slots stay exactly zero
    return out
