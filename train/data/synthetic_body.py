"""The articulated body of the synthetic set: the rest pose of a 25-joint Kinect skeleton (NTU
joint order, metres, the actor's own frame), the kinematic tree rooted at the spine base, the
joints that move named segments, rotations about the axes, and Rig, which poses one body per
sample and frame and gives its joint positions by forward kinematics.
"""

from __future__ import annotations

import numpy as np

from mksgn.train.data.graph import NUM_JOINTS, PARENTS, SPINE_MIDDLE

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
