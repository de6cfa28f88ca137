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

This module holds the dataset: sample ids, generation and the writers; the body and its
kinematics are synthetic_body.py, the actions synthetic_actions.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mksgn.atomic import atomic_directory
from mksgn.errors import MksgnError
from mksgn.train.data.body_selection import body_motion
from mksgn.train.data.formats import MAX_BODIES, SkeletonArrays, write_ctrgcn_npz
from mksgn.train.data.graph import NUM_JOINTS, SPINE_MIDDLE
from mksgn.train.data.ntu import (
    NTU60_MAX_SETUP,
    NTU60_XSUB_TRAIN_PERFORMERS,
    SampleName,
    missing_skeleton_names,
)
from mksgn.train.data.synthetic_actions import BASE_ACTIONS, Style
from mksgn.train.data.synthetic_body import (
    ARM_JOINTS,
    FK_PARENTS,
    HAND_DETAIL_JOINTS,
    HEAD,
    LEFT,
    LEG_JOINTS,
    REST_POSE,
    RIGHT,
    ROOT,
    TRUNK,
    Rig,
    rot_x,
    rot_y,
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
