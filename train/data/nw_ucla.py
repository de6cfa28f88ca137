"""`mksgn data prepare --benchmark nw-ucla-xview`: NW-UCLA's `all_sqe` JSON clips -> a CTR-GCN npz.

The distribution (CTR-GCN's, 1,484 files) holds one clip per file `aXX_sYY_eZZ_vWW.json` (action,
subject, episode, view) = {"file_name": str, "skeletons": [T][20][3] (metres), "label": 1..10}.
- Split: the cross-view protocol, train on views 1 and 2, test on view 3.
- Labels: CTR-GCN's feeder maps the ten action ids a01..a06 -> 1..6, a08 -> 7, a09 -> 8,
  a11 -> 9, a12 -> 10 (there is no a07 or a10); the npz stores them 0-based (a01 -> 0, a12 -> 9).
  A file whose own "label" disagrees with its name is malformed.
- Centring: every frame is translated by joint 2 (spine) of the first frame, as CTR-GCN's feeder
  does (and as NTU preparation does with its spine-middle joint).
- One body per clip, layout `kinect-v1-20`; clips are zero-padded at the end to the longest.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mksgn.errors import MksgnError
from mksgn.train.data.formats import CtrgcnSpool
from mksgn.train.data.layout import KINECT_V1_20
from mksgn.train.data.prepare import (
    SKIP_DUPLICATE,
    SKIP_MALFORMED,
    SKIP_UNREADABLE,
    PrepareSummary,
    SkippedFile,
    check_writable,
)

NW_UCLA_XVIEW = "nw-ucla-xview"
# CTR-GCN's feeder: action id -> label 1..10; stored 0-based.
ACTION_LABELS = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 8: 7, 9: 8, 11: 9, 12: 10}
NUM_CLASSES = len(ACTION_LABELS)
TRAIN_VIEWS = (1, 2)
TEST_VIEWS = (3,)
CENTRE_JOINT = 1  # joint 2, spine: the first frame's position becomes the origin
SKIP_EMPTY = "empty"
SKIP_BAD_NAME = "not an NW-UCLA clip name"
# A clip is tens of kilobytes (201 frames at most); refuse to parse anything far larger.
MAX_FILE_BYTES = 16 << 20
_NAME = re.compile(r"^a(\d+)_s(\d+)_e(\d+)_v(\d+)\.json$")


class BadClip(Exception):
    """A clip file that cannot be used: `reason` is a skip reason, the message says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def read_clip(path: str | os.PathLike[str], label: int) -> np.ndarray:
    """One clip as (T, 1, 20, 3) float32, centred; BadClip when it is unusable. `label` (1..10)
    is what its name says; the file's own label must agree."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise BadClip(SKIP_UNREADABLE, error.strerror or str(error)) from None
    if len(raw) > MAX_FILE_BYTES:
        raise BadClip(SKIP_MALFORMED, f"larger than {MAX_FILE_BYTES} bytes")
    if not raw.strip():
        raise BadClip(SKIP_EMPTY, "the file is empty")
    try:
        content = json.loads(raw.decode("utf8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise BadClip(SKIP_MALFORMED, f"not valid JSON (truncated?): {error}") from None
    if not isinstance(content, dict) or "skeletons" not in content:
        raise BadClip(SKIP_MALFORMED, "expected a JSON object with 'skeletons'")
    stored = content.get("label", label)
    if stored != label or isinstance(stored, bool):
        raise BadClip(SKIP_MALFORMED, f"its label is {stored!r} but its name says {label}")
    frames = content["skeletons"]
    if not isinstance(frames, list):
        raise BadClip(SKIP_MALFORMED, "'skeletons' must be a list of frames")
    if not frames:
        raise BadClip(SKIP_EMPTY, "'skeletons' holds no frame")
    joints = KINECT_V1_20.num_joints
    for index, frame in enumerate(frames):
        if (
            not isinstance(frame, list)
            or len(frame) != joints
            or not all(
                isinstance(joint, list)
                and len(joint) == 3
                and all(type(v) in (int, float) for v in joint)
                for joint in frame
            )
        ):
            raise BadClip(
                SKIP_MALFORMED, f"frame {index} is not {joints} joints of 3 numbers (x, y, z)"
            )
    clip = np.asarray(frames, dtype=np.float64)
    if not np.isfinite(clip).all() or np.abs(clip).max() > np.finfo(np.float32).max:
        raise BadClip(SKIP_MALFORMED, "holds NaN, infinite or huge coordinates")
    centred = clip - clip[0, CENTRE_JOINT]
    return centred.astype(np.float32)[:, None]


def clip_split(name: str) -> tuple[str | None, int]:
    """(split or None when outside the protocol, label 1..10) of a clip name; BadClip if it is
    not an NW-UCLA name."""
    match = _NAME.match(name)
    if not match:
        raise BadClip(SKIP_BAD_NAME, "expected aXX_sYY_eZZ_vWW.json")
    action, _, _, view = (int(group) for group in match.groups())
    if action not in ACTION_LABELS:
        raise BadClip(SKIP_BAD_NAME, f"action a{action:02d} is not one of NW-UCLA's ten")
    split = "train" if view in TRAIN_VIEWS else "test" if view in TEST_VIEWS else None
    return split, ACTION_LABELS[action]


def prepare_nw_ucla(
    raw_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    strict: bool = False,
    progress: bool = True,
) -> PrepareSummary:
    """Read NW-UCLA's JSON clips, split them cross-view and write a CTR-GCN npz (one body,
    layout kinect-v1-20, 0-based labels), listing the files it skipped."""
    started = time.perf_counter()
    raw_dir, out = Path(raw_dir), Path(out)
    if not raw_dir.is_dir():
        raise MksgnError(f"{raw_dir}: not a folder; pass NW-UCLA's all_sqe folder of .json clips")
    check_writable(out)
    files = sorted(
        os.path.relpath(os.path.join(folder, name), raw_dir)
        for folder, _, names in os.walk(raw_dir)
        for name in names
        if name.endswith(".json")
    )
    if not files:
        raise MksgnError(
            f"{raw_dir}: no .json files found (searched recursively); pass NW-UCLA's all_sqe "
            "folder (aXX_sYY_eZZ_vWW.json clips)"
        )
    summary = PrepareSummary(
        benchmark=NW_UCLA_XVIEW,
        raw_dir=str(raw_dir),
        out=str(out),
        num_classes=NUM_CLASSES,
        frames=0,
        files_found=len(files),
        file_kind=".json",
        layout=KINECT_V1_20.name,
    )
    clips: list[tuple[str, str, int, np.ndarray]] = []  # (split, name, 0-based label, clip)
    seen: set[str] = set()
    for relative in tqdm(
        files, desc="Reading clips", unit="file", disable=not progress, file=sys.stderr
    ):
        name = os.path.basename(relative)
        try:
            split, label = clip_split(name)
            if split is None:
                summary.not_in_benchmark += 1
                continue
            if name in seen:
                raise BadClip(SKIP_DUPLICATE, f"another file is already {name}")
            seen.add(name)
            summary.parsed += 1
            clip = read_clip(raw_dir / relative, label)
        except BadClip as bad:
            if strict and bad.reason != SKIP_DUPLICATE:
                raise MksgnError(
                    f"{raw_dir / relative}: {bad} (--strict stops at the first bad file)"
                ) from None
            summary.skipped.append(SkippedFile(relative, bad.reason, str(bad)))
            continue
        clips.append((split, name[: -len(".json")], label - 1, clip))
    if not clips:
        counts = ", ".join(f"{r}: {c}" for r, c in summary.skipped_counts().items()) or "none"
        raise MksgnError(
            f"{raw_dir}: no usable {NW_UCLA_XVIEW} clip among {len(files)} .json files "
            f"(skipped {counts}); nothing was written to {out}"
        )
    summary.frames = max(len(clip) for *_, clip in clips)
    with CtrgcnSpool(out, summary.frames, KINECT_V1_20, bodies=1) as spool:
        for split, name, label, clip in clips:
            spool.add(split, name, label, clip)
        for split, counts in (
            ("train", summary.train_class_counts),
            ("test", summary.test_class_counts),
        ):
            counts.extend(np.bincount(spool.labels[split], minlength=NUM_CLASSES).tolist())
        spool.write(NUM_CLASSES)
    summary.seconds = time.perf_counter() - started
    return summary
