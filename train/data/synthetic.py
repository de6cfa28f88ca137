"""The built-in synthetic skeleton action set: NTU-shaped samples generated in about a second.

Each sample is one or two anatomically plausible 25-joint Kinect skeletons (NTU joint order, metres,
camera space: x to the sensor's left, y up, z away from the sensor, floor at y = 0, actors about
3 m away) animated by forward kinematics from parametric joint angles. Per sample the action's
start, duration, tempo, phase and amplitude vary, the performer fixes body size and limb
proportions, the camera and replication fix the viewpoint (NTU's front, side and 45° views) plus
a jitter, and every joint gets Gaussian noise.

There are 14 base actions (`BASE_ACTIONS`); classes 15..28 are the same actions done twice as
fast ("... (fast)"), and more than 28 classes is an error. The first eight classes hold two
close pairs (wave vs raise the same arm, punch vs push), so a linear model on raw joints does not
solve the task, while motion features do.

Samples are stored like a prepared NTU split: translated so that joint 2 (spine middle) of
actor 1 in the first frame is the origin, the more moving body first, a missing second body
all zeros. `origins` keeps the translation, so the raw `.skeleton` files hold camera-space
coordinates and `mksgn data prepare` turns them back into the same arrays.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mksgn.atomic import atomic_directory
from mksgn.errors import MksgnError
from mksgn.train.data.body_selection import body_motion
from mksgn.train.data.formats import MAX_BODIES, SkeletonArrays, write_ctrgcn_npz
from mksgn.train.data.graph import NUM_JOINTS, PARENTS, SPINE_MIDDLE
from mksgn.train.data.ntu import (
    NTU60_MAX_SETUP,
    NTU60_XSUB_TRAIN_PERFORMERS,
    SampleName,
    missing_skeleton_names,
)

NTU60_PERFORMERS = 40
TRAIN_PERFORMERS = tuple(sorted(NTU60_XSUB_TRAIN_PERFORMERS))
TEST_PERFORMERS = tuple(
    p for p in range(1, NTU60_PERFORMERS + 1) if p not in NTU60_XSUB_TRAIN_PERFORMERS
)
CAMERAS = (1, 2, 3)
REPLICATIONS = (1, 2)
# Distinct (setup, camera, replication) per performer and class, so names never collide, and
# none on NTU's missing-skeleton list (at most 9 per action and performer).
MAX_SAMPLES_PER_CLASS = NTU60_PERFORMERS * (NTU60_MAX_SETUP * len(CAMERAS) * len(REPLICATIONS) - 9)
# NTU's camera 1 sees the ±45° views, cameras 2 and 3 the front and side views: the actor turns
# to -45° (replication 1) or +45° (replication 2), the cameras stand at 0°, +45°, -45°.
CAMERA_ANGLE = {1: 0.0, 2: np.pi / 4, 3: -np.pi / 4}
FACING_ANGLE = {1: -np.pi / 4, 2: np.pi / 4}
VIEW_JITTER = np.deg2rad(25.0)
# Per-sample variation (uniform ranges). They are what keeps a linear model on raw joints from
# solving the set: the action starts and lasts differently, and the actor moves besides acting.
START_RANGE = (0.0, 0.25)  # share of the clip before the action starts
DURATION_RANGE = (0.6, 1.0)  # share of the clip the action lasts (it may run past the end)
AMPLITUDE_RANGE = (0.65, 1.2)
TEMPO_RANGE = (0.8, 1.25)  # oscillation speed factor
FIDGET_ARM = 0.35  # radians of slow arm drift
FIDGET_TWIST = 0.2  # radians of trunk and head turn
FIDGET_SWAY = 0.03  # metres of weight shift
JOINT_NOISE = 0.008  # metres; Kinect v2 joint jitter is of this order
HAND_NOISE = 0.015  # hand tips and thumbs are tracked worst
SKELETON_SUFFIX = ".skeleton"

# --- the skeleton ----------------------------------------------------------------------------
# Rest pose of a 1.72 m adult in its own frame: x = the actor's left, y up, z forward, feet on
# the floor. Index = NTU joint - 1.
REST_POSE = np.array(
    [
        (0.0, 0.98, -0.02),  # 1 spine base
        (0.0, 1.22, -0.03),  # 2 spine middle
        (0.0, 1.53, 0.0),  # 3 neck
        (0.0, 1.66, 0.02),  # 4 head
        (0.185, 1.42, -0.02),  # 5 left shoulder
        (0.20, 1.14, -0.03),  # 6 left elbow
        (0.21, 0.89, -0.01),  # 7 left wrist
        (0.21, 0.82, 0.0),  # 8 left hand
        (-0.185, 1.42, -0.02),  # 9 right shoulder
        (-0.20, 1.14, -0.03),  # 10 right elbow
        (-0.21, 0.89, -0.01),  # 11 right wrist
        (-0.21, 0.82, 0.0),  # 12 right hand
        (0.09, 0.95, -0.02),  # 13 left hip
        (0.095, 0.52, 0.0),  # 14 left knee
        (0.095, 0.09, -0.03),  # 15 left ankle
        (0.095, 0.03, 0.09),  # 16 left foot
        (-0.09, 0.95, -0.02),  # 17 right hip
        (-0.095, 0.52, 0.0),  # 18 right knee
        (-0.095, 0.09, -0.03),  # 19 right ankle
        (-0.095, 0.03, 0.09),  # 20 right foot
        (0.0, 1.45, -0.02),  # 21 spine shoulder
        (0.21, 0.74, 0.01),  # 22 left hand tip
        (0.19, 0.80, 0.04),  # 23 left thumb
        (-0.21, 0.74, 0.01),  # 24 right hand tip
        (-0.19, 0.80, 0.04),  # 25 right thumb
    ],
    dtype=np.float64,
)
ROOT = 0  # forward kinematics hangs the body from the spine base, not the graph centre


def _kinematic_tree() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Parents rooted at the spine base (the graph's spine edges reversed) and a parent-first order."""
    parents = list(PARENTS)
    parents[ROOT], parents[SPINE_MIDDLE], parents[20] = -1, ROOT, SPINE_MIDDLE
    order, frontier = [], [ROOT]
    while frontier:
        joint = frontier.pop(0)
        order.append(joint)
        frontier.extend(child for child, parent in enumerate(parents) if parent == joint)
    return tuple(parents), tuple(order)


FK_PARENTS, FK_ORDER = _kinematic_tree()
# Joints whose local rotation moves a named segment (the rotation of the bone ending there).
TRUNK, HEAD = 1, 2
UPPER_ARM = {+1: 5, -1: 9}  # side: +1 left, -1 right
FOREARM = {+1: 6, -1: 10}
THIGH = {+1: 13, -1: 17}
SHANK = {+1: 14, -1: 18}
FOOT = {+1: 15, -1: 19}
ARM_JOINTS = (4, 5, 6, 7, 8, 9, 10, 11, 21, 22, 23, 24)
LEG_JOINTS = (12, 13, 14, 15, 16, 17, 18, 19)
HAND_DETAIL_JOINTS = (21, 22, 23, 24)
LEFT, RIGHT = +1, -1


def rot_x(angle: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) about x; a positive angle turns +y towards +z (a raised limb forward)."""
    return _rotation(angle, 1, 2)


def rot_y(angle: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) about y (vertical); a positive angle turns +z (forward) towards +x."""
    return _rotation(angle, 2, 0)


def rot_z(angle: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) about z; a positive angle turns -y (a hanging limb) towards +x."""
    return _rotation(angle, 0, 1)


def _rotation(angle: np.ndarray, first: int, second: int) -> np.ndarray:
    angle = np.asarray(angle, dtype=np.float64)
    out = np.zeros((*angle.shape, 3, 3))
    cos, sin = np.cos(angle), np.sin(angle)
    axis = 3 - first - second
    out[..., axis, axis] = 1.0
    out[..., first, first] = cos
    out[..., first, second] = -sin
    out[..., second, first] = sin
    out[..., second, second] = cos
    return out


def smoothstep(start: float, end: float, u: np.ndarray) -> np.ndarray:
    """0 before `start`, 1 after `end`, a smooth cubic in between."""
    s = np.clip((u - start) / (end - start), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def envelope(u: np.ndarray, rise: tuple[float, float], fall: tuple[float, float]) -> np.ndarray:
    """Rise smoothly over `rise`, hold at 1, fall over `fall` (all in action time 0..1)."""
    return smoothstep(*rise, u) * (1.0 - smoothstep(*fall, u))


def pulse(u: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A smooth bump of height 1 at `centre`, zero beyond ±width."""
    s = np.clip(np.abs(u - centre) / width, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * s))


class Rig:
    """Local bone rotations and root motion of one body for S samples × T frames."""

    def __init__(self, offsets: np.ndarray, u: np.ndarray) -> None:
        self.offsets = offsets  # (S, 25, 3) bone vectors from the FK parent, body frame
        self.shape = u.shape
        self.rotations: dict[int, np.ndarray] = {}
        self.root_shift = np.zeros((*u.shape, 3))

    def rotate(self, joint: int, rotation: np.ndarray) -> None:
        """Compose `rotation` after the joint's current local rotation (in the parent frame)."""
        rotation = np.broadcast_to(rotation, (*self.shape, 3, 3))
        current = self.rotations.get(joint)
        self.rotations[joint] = rotation if current is None else rotation @ current

    def leg_drop(self, side: int, drop: np.ndarray) -> None:
        """Bend hip, knee and ankle so the hip sits `drop` metres lower over a still, flat foot."""
        thigh = np.linalg.norm(self.offsets[:, THIGH[side]], axis=-1)[:, None]
        shank = np.linalg.norm(self.offsets[:, SHANK[side]], axis=-1)[:, None]
        reach = np.clip(thigh + shank - drop, 0.35 * (thigh + shank), thigh + shank)
        cos_inner = np.clip((thigh**2 + shank**2 - reach**2) / (2 * thigh * shank), -1.0, 1.0)
        knee = np.pi - np.arccos(cos_inner)
        cos_hip = np.clip((thigh**2 + reach**2 - shank**2) / (2 * thigh * reach), -1.0, 1.0)
        hip = np.arccos(cos_hip)
        self.bend_leg(side, hip, knee)

    def bend_leg(self, side: int, hip: np.ndarray, knee: np.ndarray) -> None:
        """Hip flexion (thigh forward) and knee flexion (shank back); the foot stays level."""
        self.rotate(THIGH[side], rot_x(-hip))
        self.rotate(SHANK[side], rot_x(knee))
        self.rotate(FOOT[side], rot_x(hip - knee))

    def arm(
        self,
        side: int,
        flex: np.ndarray | float = 0.0,
        abduct: np.ndarray | float = 0.0,
        swing: np.ndarray | float = 0.0,
        elbow: np.ndarray | float = 0.0,
        elbow_up: np.ndarray | float = 0.0,
    ) -> None:
        """Pose an arm: forward flexion, sideways abduction, horizontal swing outwards, elbow
        flexion forwards and (for a sideways arm) upwards, all in radians."""
        upper = rot_y(side * np.asarray(swing)) @ rot_z(side * np.asarray(abduct))
        self.rotate(UPPER_ARM[side], upper @ rot_x(-np.asarray(flex)))
        self.rotate(FOREARM[side], rot_z(side * np.asarray(elbow_up)) @ rot_x(-np.asarray(elbow)))

    def lean(self, forward: np.ndarray | float) -> None:
        """Bend the upper body forwards at the hips (negative: backwards)."""
        self.rotate(TRUNK, rot_x(np.asarray(forward)))

    def positions(self) -> np.ndarray:
        """Forward kinematics -> (S, T, 25, 3) joint positions in the body frame."""
        samples, frames = self.shape
        identity = np.broadcast_to(np.eye(3), (samples, frames, 3, 3))
        world = np.zeros((samples, frames, NUM_JOINTS, 3))
        frames_of = {}
        for joint in FK_ORDER:
            local = self.rotations.get(joint, identity)
            if joint == ROOT:
                frames_of[joint] = local
                world[:, :, joint] = self.offsets[:, None, ROOT] + self.root_shift
                continue
            parent = FK_PARENTS[joint]
            frames_of[joint] = frames_of[parent] @ local
            bone = np.einsum("stij,sj->sti", frames_of[joint], self.offsets[:, joint])
            world[:, :, joint] = world[:, :, parent] + bone
        return world


@dataclass(frozen=True)
class Style:
    """Per-sample variation of an action, each (S, 1): amplitude, tempo, oscillation phase."""

    amplitude: np.ndarray
    tempo: np.ndarray
    phase: np.ndarray

    def wave(self, u: np.ndarray, cycles: float) -> np.ndarray:
        """A sine with `cycles` periods over the action (× the sample's tempo), random phase."""
        return np.sin(2 * np.pi * cycles * self.tempo * u + self.phase)


Animate = Callable[[list[Rig], np.ndarray, Style], None]


@dataclass(frozen=True)
class Action:
    """A parametric action: how to animate its bodies and how far apart two actors start."""

    name: str
    animate: Animate
    bodies: int = 1
    partner_distance: tuple[float, float] = (0.0, 0.0)


# --- single-actor actions --------------------------------------------------------------------
def _wave(side: int) -> Animate:
    def animate(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
        up = envelope(u, (0.05, 0.25), (0.78, 0.95))
        rigs[0].arm(
            side,
            flex=0.3 * up,
            abduct=1.35 * up * style.amplitude,
            elbow_up=up * (1.45 + 0.4 * style.wave(u, 3.0)),
        )

    return animate


def _raise_arm(side: int) -> Animate:
    def animate(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
        up = envelope(u, (0.08, 0.4), (0.68, 0.95))
        rigs[0].arm(side, flex=2.6 * up * style.amplitude, abduct=0.15 * up, elbow=0.15 * up)

    return animate


def _squat(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    down = envelope(u, (0.1, 0.42), (0.6, 0.92)) * style.amplitude
    drop = 0.42 * down
    for side in (LEFT, RIGHT):
        rigs[0].leg_drop(side, drop)
        rigs[0].arm(side, flex=1.3 * down)
    rigs[0].lean(0.55 * down)
    rigs[0].root_shift[..., 1] -= drop


def _jump(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    crouch = 0.2 * pulse(u, 0.3, 0.14) + 0.14 * pulse(u, 0.7, 0.1)
    flight = 0.22 * style.amplitude * pulse(u, 0.5, 0.1)
    for side in (LEFT, RIGHT):
        rigs[0].leg_drop(side, crouch)
        rigs[0].bend_leg(side, 0.25 * flight / 0.22, 0.5 * flight / 0.22)  # tuck in the air
        rigs[0].arm(side, flex=-0.7 * pulse(u, 0.3, 0.14) + 2.3 * pulse(u, 0.5, 0.12))
    rigs[0].lean(1.2 * crouch)
    rigs[0].root_shift[..., 1] += flight - crouch


def _clap(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    on = envelope(u, (0.05, 0.22), (0.8, 0.95))
    opening = on * (-0.2 + 0.6 * style.amplitude * (0.5 + 0.5 * style.wave(u, 4.0)))
    for side in (LEFT, RIGHT):
        rigs[0].arm(side, flex=1.25 * on, swing=opening, elbow=0.6 * on)


def _walk(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    on = envelope(u, (0.02, 0.15), (0.85, 0.98))
    step = style.wave(u, 2.0)
    for side, lift in ((LEFT, np.maximum(step, 0)), (RIGHT, np.maximum(-step, 0))):
        hip = 0.75 * on * lift * style.amplitude
        rigs[0].bend_leg(side, hip, 1.8 * hip)
        rigs[0].arm(side, flex=-0.45 * on * side * step, elbow=0.3 * on)
    rigs[0].root_shift[..., 1] += 0.02 * on * np.abs(step)


def _kick(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    chamber = envelope(u, (0.2, 0.38), (0.62, 0.85))
    extend = pulse(u, 0.5, 0.1) * style.amplitude
    rigs[0].bend_leg(RIGHT, chamber * 1.1 + 0.35 * extend, chamber * 1.6 - 1.45 * extend)
    rigs[0].lean(-0.2 * chamber)
    for side in (LEFT, RIGHT):
        rigs[0].arm(side, abduct=0.45 * chamber, elbow=0.8 * chamber)


def _bow(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    bend = envelope(u, (0.12, 0.45), (0.58, 0.9)) * style.amplitude
    rigs[0].lean(1.0 * bend)
    rigs[0].rotate(HEAD, rot_x(0.25 * bend))
    for side in (LEFT, RIGHT):
        rigs[0].arm(side, flex=-0.85 * bend)  # the arms keep hanging while the trunk bends
    rigs[0].root_shift[..., 2] -= 0.1 * bend


def _raise_both_arms(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    up = envelope(u, (0.1, 0.4), (0.65, 0.92))
    for side in (LEFT, RIGHT):
        rigs[0].arm(side, abduct=2.7 * up * style.amplitude, elbow=0.2 * up)


# --- two-actor interactions (actor 2 stands in front of actor 1, facing it) ------------------
def _punch(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    puncher, hit = rigs
    guard = envelope(u, (0.03, 0.2), (0.82, 0.97))
    strikes = (pulse(u, 0.38, 0.09), pulse(u, 0.64, 0.09))
    strike = strikes[0] + strikes[1]
    puncher.arm(
        RIGHT,
        flex=guard * (0.9 + 0.7 * strike),
        swing=-0.25 * guard * strike,
        elbow=guard * (2.1 - 1.95 * strike * style.amplitude),
    )
    puncher.arm(LEFT, flex=0.8 * guard, swing=-0.15 * guard, elbow=2.1 * guard)
    puncher.rotate(TRUNK, rot_y(0.25 * strike * guard))  # the shoulder follows the fist
    puncher.root_shift[..., 2] += 0.08 * guard
    flinch = pulse(u, 0.42, 0.1) + pulse(u, 0.68, 0.1)
    hit.lean(-0.25 * flinch * style.amplitude)
    hit.rotate(HEAD, rot_x(-0.3 * flinch))
    hit.root_shift[..., 2] -= 0.12 * smoothstep(0.4, 0.75, u)
    for side in (LEFT, RIGHT):
        hit.arm(side, flex=0.9 * flinch, elbow=1.5 * flinch)  # covering up


def _handshake(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    reach = envelope(u, (0.08, 0.3), (0.75, 0.93))
    shake = 0.12 * reach * style.wave(u, 3.0)
    for rig in rigs:
        rig.arm(
            RIGHT,
            flex=0.85 * reach * style.amplitude + shake,
            swing=-0.3 * reach,
            elbow=0.6 * reach,
        )
        rig.root_shift[..., 2] += 0.12 * reach


def _push(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    pusher, pushed = rigs
    ready = envelope(u, (0.1, 0.3), (0.7, 0.92))
    thrust = smoothstep(0.35, 0.48, u) * (1.0 - smoothstep(0.6, 0.8, u)) * style.amplitude
    for side in (LEFT, RIGHT):
        pusher.arm(side, flex=ready * 1.0 + 0.45 * thrust, elbow=ready * 1.7 - 1.5 * thrust)
    pusher.lean(0.25 * thrust)
    pusher.root_shift[..., 2] += 0.15 * thrust
    staggered = smoothstep(0.45, 0.72, u) * style.amplitude
    pushed.root_shift[..., 2] -= 0.35 * staggered
    pushed.lean(-0.3 * pulse(u, 0.55, 0.15))
    for side in (LEFT, RIGHT):
        pushed.arm(side, abduct=0.5 * pulse(u, 0.58, 0.18), flex=0.4 * pulse(u, 0.55, 0.15))


def _hug(rigs: list[Rig], u: np.ndarray, style: Style) -> None:
    hold = envelope(u, (0.1, 0.4), (0.7, 0.95))
    for rig in rigs:
        rig.root_shift[..., 2] += 0.22 * hold
        rig.lean(0.15 * hold)
        for side in (LEFT, RIGHT):
            rig.arm(side, abduct=1.3 * hold * style.amplitude, swing=-0.9 * hold, elbow=1.0 * hold)


BASE_ACTIONS: tuple[Action, ...] = (
    Action("wave right hand", _wave(RIGHT)),
    Action("raise right arm", _raise_arm(RIGHT)),
    Action("punch other person", _punch, bodies=2, partner_distance=(0.7, 0.85)),
    Action("push other person", _push, bodies=2, partner_distance=(0.7, 0.8)),
    Action("squat down", _squat),
    Action("jump up", _jump),
    Action("clap", _clap),
    Action("handshake", _handshake, bodies=2, partner_distance=(0.85, 1.0)),
    Action("walk in place", _walk),
    Action("kick", _kick),
    Action("bow", _bow),
    Action("raise both arms", _raise_both_arms),
    Action("wave left hand", _wave(LEFT)),
    Action("hug other person", _hug, bodies=2, partner_distance=(0.85, 0.95)),
)
FAST_SUFFIX = " (fast)"
MAX_CLASSES = 2 * len(BASE_ACTIONS)


def class_names(classes: int) -> tuple[str, ...]:
    """Names of the first `classes` classes: the base actions, then their fast variants."""
    _check_classes(classes)
    return tuple(
        BASE_ACTIONS[k % len(BASE_ACTIONS)].name + (FAST_SUFFIX if k >= len(BASE_ACTIONS) else "")
        for k in range(classes)
    )


def _check_classes(classes: int) -> None:
    if not 2 <= classes <= MAX_CLASSES:
        raise MksgnError(
            f"--classes {classes}: the synthetic set has 2 to {MAX_CLASSES} classes "
            f"({len(BASE_ACTIONS)} actions and their fast variants); choose a number in that range"
        )


# --- generation ------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)  # arrays have no single truth value to compare by
class SyntheticSet:
    """A generated dataset laid out like a prepared NTU split (see the module docstring)."""

    data: np.ndarray  # (N, 3, T, 25, 2) float32, centred
    labels: np.ndarray  # (N,) int64, 0-based
    names: tuple[str, ...]  # NTU names SsssCcccPpppRrrrAaaa, A = label + 1
    split: tuple[str, ...]  # "train" / "test", by performer (NTU60 cross-subject)
    class_names: tuple[str, ...]
    origins: np.ndarray  # (N, 3) float32: camera-space position of the origin of each sample

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def part(self, split: str) -> SkeletonArrays:
        """The samples of one split ("train" or "test") as SkeletonArrays."""
        rows = np.flatnonzero(np.array(self.split) == split)
        return SkeletonArrays(
            data=self.data[rows],
            labels=self.labels[rows],
            names=tuple(self.names[i] for i in rows),
        )

    def camera_space(self, index: int) -> np.ndarray:
        """Sample `index` in camera coordinates as (T, M, 25, 3); absent bodies stay zero."""
        joints = self.data[index].transpose(1, 3, 2, 0)  # (T, M, 25, 3)
        present = np.any(joints != 0, axis=(2, 3))
        out = np.zeros_like(joints)
        out[present] = joints[present] + self.origins[index]
        return out


def _performer_shapes(rng: np.random.Generator) -> np.ndarray:
    """(41, 25, 3) bone offsets per performer id (index 0 unused): size and limb proportions."""
    offsets = REST_POSE - REST_POSE[np.maximum(FK_PARENTS, 0)]
    offsets[ROOT] = REST_POSE[ROOT]
    height = rng.uniform(0.88, 1.1, size=(NTU60_PERFORMERS + 1, 1, 1))
    arm = rng.uniform(0.94, 1.06, size=(NTU60_PERFORMERS + 1, 1))
    leg = rng.uniform(0.94, 1.06, size=(NTU60_PERFORMERS + 1, 1))
    width = rng.uniform(0.9, 1.12, size=(NTU60_PERFORMERS + 1, 1))
    shapes = np.repeat(offsets[None], NTU60_PERFORMERS + 1, axis=0) * height
    shapes[:, ARM_JOINTS] *= arm[:, :, None]
    shapes[:, LEG_JOINTS] *= leg[:, :, None]
    shapes[:, :, 0] *= width  # shoulders and hips
    shapes[:, ROOT, 1] *= leg[:, 0]  # longer legs carry the pelvis higher
    return shapes


def _sample_ids(
    rng: np.random.Generator, samples_per_class: int, action: int
) -> tuple[list[SampleName], list[str]]:
    """NTU ids for one class: alternate train/test performers, unique setup/camera/replication."""
    train, test = rng.permutation(TRAIN_PERFORMERS), rng.permutation(TEST_PERFORMERS)
    combos = [
        (setup, camera, replication)
        for setup in range(1, NTU60_MAX_SETUP + 1)
        for camera in CAMERAS
        for replication in REPLICATIONS
    ]
    order = rng.permutation(len(combos))
    # Each performer walks the shuffled combos from its own random start: unique, and varied.
    starts = rng.integers(0, len(combos), size=NTU60_PERFORMERS + 1)
    missing = missing_skeleton_names("ntu60-xsub")  # `data prepare` would skip those names
    position: dict[int, int] = {}
    ids, splits = [], []
    for i in range(samples_per_class):
        pool, split = (train, "train") if i % 2 == 0 else (test, "test")
        performer = int(pool[(i // 2) % len(pool)])
        while True:
            step = position.get(performer, 0)
            position[performer] = step + 1
            setup, camera, replication = combos[order[(starts[performer] + step) % len(combos)]]
            if str(SampleName(setup, camera, performer, replication, action)) not in missing:
                break
        ids.append(SampleName(setup, camera, performer, replication, action))
        splits.append(split)
    return ids, splits


def _partner(performer: int) -> int:
    """The performer who acts as the partner in a two-person sample: same split, next id."""
    pool = TRAIN_PERFORMERS if performer in NTU60_XSUB_TRAIN_PERFORMERS else TEST_PERFORMERS
    return pool[(pool.index(performer) + 1) % len(pool)]


def _fidget(rig: Rig, rng: np.random.Generator, clock: np.ndarray) -> None:
    """Movement unrelated to the action: idle posture, slow arm drift, trunk twist, sway."""
    column = (rig.shape[0], 1)

    def drift(scale: float) -> np.ndarray:
        amplitude = rng.uniform(0.0, scale, size=column)
        cycles = rng.uniform(0.3, 1.2, size=column)
        return amplitude * np.sin(2 * np.pi * cycles * clock + rng.uniform(0, 2 * np.pi, column))

    for side in (LEFT, RIGHT):
        rig.arm(
            side,
            flex=drift(FIDGET_ARM),
            abduct=rng.uniform(0.03, 0.2, size=column) + np.abs(drift(FIDGET_ARM / 2)),
            elbow=rng.uniform(0.05, 0.35, size=column) + np.abs(drift(FIDGET_ARM)),
        )
    rig.rotate(TRUNK, rot_y(drift(FIDGET_TWIST)) @ rot_x(drift(FIDGET_TWIST / 2)))
    rig.rotate(HEAD, rot_y(drift(FIDGET_TWIST)))
    rig.root_shift[..., 0] += drift(FIDGET_SWAY)
    rig.root_shift[..., 2] += drift(FIDGET_SWAY)


def _animate_class(
    rng: np.random.Generator,
    klass: int,
    ids: list[SampleName],
    shapes: np.ndarray,
    frames: int,
) -> np.ndarray:
    """(S, T, M, 25, 3) camera-space joints of one class's samples."""
    action = BASE_ACTIONS[klass % len(BASE_ACTIONS)]
    repeats = 1 + klass // len(BASE_ACTIONS)
    count = len(ids)
    column = (count, 1)

    clock = np.linspace(0.0, 1.0, frames)[None, :]
    start = rng.uniform(*START_RANGE, size=column)
    duration = rng.uniform(*DURATION_RANGE, size=column)
    u = np.clip((clock - start) / duration, 0.0, 1.0)
    u = np.minimum(u * repeats, repeats - 1e-9) % 1.0 if repeats > 1 else u
    style = Style(
        amplitude=rng.uniform(*AMPLITUDE_RANGE, size=column),
        tempo=rng.uniform(*TEMPO_RANGE, size=column),
        phase=rng.uniform(0.0, 2 * np.pi, size=column),
    )
    rigs = [Rig(shapes[[sample.performer for sample in ids]], u)]
    if action.bodies == 2:  # the partner: the next performer of the same split
        rigs.append(Rig(shapes[[_partner(sample.performer) for sample in ids]], u))
    for rig in rigs:
        _fidget(rig, rng, clock)
    action.animate(rigs, u, style)

    bodies = np.zeros((count, frames, MAX_BODIES, NUM_JOINTS, 3))
    bodies[:, :, 0] = rigs[0].positions()
    if action.bodies == 2:
        distance = rng.uniform(*action.partner_distance, size=column)
        partner = rigs[1].positions() * (-1.0, 1.0, -1.0)  # turned by 180°: facing actor 1
        partner[..., 2] += distance[:, :, None]
        bodies[:, :, 1] = partner
        bodies[..., 2] -= (distance / 2)[:, :, None, None]  # the pair's midpoint at the origin

    # Body frame -> camera space: turn the actor (or pair) to face the camera, then by the view.
    camera = np.array([CAMERA_ANGLE[sample.camera] for sample in ids])
    facing = np.array([FACING_ANGLE[sample.replication] for sample in ids])
    jitter = rng.uniform(-VIEW_JITTER, VIEW_JITTER, size=count)
    if action.bodies == 2:  # a pair faces each other across the middle camera's view
        view = np.pi / 2 * rng.choice((-1.0, 1.0), size=count) - camera + jitter
    else:
        view = facing - camera + jitter
    to_camera = rot_y(np.pi + view)  # the actor's forward (+z) points at the sensor (-z)
    placed = np.einsum("sij,stmvj->stmvi", to_camera, bodies)
    placed[..., 0] += rng.uniform(-0.5, 0.5, size=count)[:, None, None, None]
    placed[..., 2] += rng.uniform(2.6, 3.6, size=count)[:, None, None, None]

    noise = rng.normal(0.0, JOINT_NOISE, size=placed.shape)
    noise[..., HAND_DETAIL_JOINTS, :] *= HAND_NOISE / JOINT_NOISE
    placed += noise
    if action.bodies == 1:
        placed[:, :, 1] = 0.0
    return placed


def _centre(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order bodies by motion and translate as NTU preparation does -> (N,3,T,25,2), origins."""
    joints = joints.astype(np.float32)  # the precision the .skeleton files round-trip
    for sample in joints:
        if np.any(sample[:, 1]) and body_motion(sample[:, 1]) > body_motion(sample[:, 0]):
            sample[:, [0, 1]] = sample[:, [1, 0]]
    origins = joints[:, 0, 0, SPINE_MIDDLE].copy()  # (N, 3)
    present = np.any(joints != 0, axis=(3, 4))  # (N, T, M)
    centred = np.where(present[..., None, None], joints - origins[:, None, None, None], 0.0)
    return np.ascontiguousarray(centred.transpose(0, 4, 1, 3, 2), dtype=np.float32), origins


def generate(
    classes: int = 8, samples_per_class: int = 40, frames: int = 64, seed: int = 0
) -> SyntheticSet:
    """Generate the synthetic set; the same arguments always give the same bytes."""
    _check_classes(classes)
    if not 2 <= samples_per_class <= MAX_SAMPLES_PER_CLASS:
        raise MksgnError(
            f"--samples-per-class {samples_per_class}: choose 2 to {MAX_SAMPLES_PER_CLASS} "
            "(at least one train and one test sample, and unique NTU sample names)"
        )
    if frames < 2:
        raise MksgnError(f"--frames {frames}: a sample needs at least 2 frames")
    rng = np.random.default_rng(seed)
    shapes = _performer_shapes(rng)
    all_joints, labels, names, splits = [], [], [], []
    for klass in range(classes):
        ids, class_splits = _sample_ids(rng, samples_per_class, action=klass + 1)
        all_joints.append(_animate_class(rng, klass, ids, shapes, frames))
        labels += [klass] * samples_per_class
        names += [str(sample) for sample in ids]
        splits += class_splits
    data, origins = _centre(np.concatenate(all_joints))
    # In file-name order, as `data prepare` writes NTU: the action is the last part of the
    # name, so classes interleave and the first N test samples (simulate --samples N) span them.
    order = np.argsort(names, kind="stable")
    return SyntheticSet(
        data=data[order],
        labels=np.array(labels, dtype=np.int64)[order],
        names=tuple(names[i] for i in order),
        split=tuple(splits[i] for i in order),
        class_names=class_names(classes),
        origins=origins[order],
    )


# --- output ----------------------------------------------------------------------------------
def write_npz(dataset: SyntheticSet, path: str | os.PathLike[str]) -> None:
    """Write the set as a CTR-GCN npz (with sample and class names), atomically."""
    write_ctrgcn_npz(
        path,
        dataset.part("train"),
        dataset.part("test"),
        num_classes=dataset.num_classes,
        class_names=dataset.class_names,
    )


def write_skeleton_dir(dataset: SyntheticSet, folder: str | os.PathLike[str]) -> None:
    """Write one raw NTU `<name>.skeleton` file per sample into `folder`, atomically.

    An existing folder is replaced, but only if it holds nothing except .skeleton files.
    """
    from mksgn.train.data.skeleton_file import write_skeleton_file

    folder = Path(folder)
    if folder.exists():
        if not folder.is_dir():
            raise MksgnError(f"{folder}: exists and is not a folder; choose another --out")
        foreign = [p.name for p in folder.iterdir() if p.suffix != SKELETON_SUFFIX]
        if foreign:
            raise MksgnError(
                f"{folder}: refusing to replace a folder that holds other files "
                f"(e.g. {foreign[0]!r}); choose an empty or new --out folder"
            )
    with atomic_directory(folder) as tmp:
        for index, name in enumerate(dataset.names):
            write_skeleton_file(tmp / f"{name}{SKELETON_SUFFIX}", dataset.camera_space(index))


def summarize(dataset: SyntheticSet, out: str | os.PathLike[str], fmt: str) -> dict[str, Any]:
    """What `mksgn data synth` reports: sizes, split, frames, where and in which format."""
    return {
        "samples": len(dataset.labels),
        "classes": dataset.num_classes,
        "train": dataset.split.count("train"),
        "test": dataset.split.count("test"),
        "frames": int(dataset.data.shape[2]),
        "path": str(out),
        "format": fmt,
        "class_names": list(dataset.class_names),
    }
