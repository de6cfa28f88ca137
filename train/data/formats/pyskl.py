"""Reader of PYSKL pickles (a dict with 'split' and 'annotations'), loaded without running code."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

import mksgn.train.data.formats.base as base
from mksgn.errors import MksgnError
from mksgn.train.data.formats.arrays import (
    COORDS,
    MAX_BODIES,
    NUM_JOINTS,
    SPLITS,
    SkeletonArrays,
)
from mksgn.train.data.formats.base import (
    _PYSKL_ROLE,
    PYSKL_PKL,
    DatasetFile,
    _canonical_split,
    _check_allocation,
    _checked_classes,
    _shape_text,
    resolve_layout,
)
from mksgn.train.data.layout import COCO_17, NTU_25, SkeletonLayout
from mksgn.train.data.safe_pickle import load_pickle


@dataclass(frozen=True)
class _PysklSample:
    """One validated PYSKL annotation."""

    label: int
    keypoint: np.ndarray  # (M, T, V, 3): x, y, z or x, y, score


class PysklPickle(DatasetFile):
    """PYSKL pickle: dict(split={'xsub_train': [names], ...}, annotations=[dict(frame_dir, ...)])."""

    format = PYSKL_PKL
    holds_benchmarks = True

    def _open(
        self, layout: SkeletonLayout | None, layout_source: str, benchmark: str | None
    ) -> None:
        content = load_pickle(self.path)
        if not isinstance(content, dict) or "split" not in content or "annotations" not in content:
            raise MksgnError(
                f"{self.path}: not a PYSKL annotation pickle: expected a dict with keys 'split' and "
                "'annotations'"
                + (
                    f" (has keys: {', '.join(map(str, content))})"
                    if isinstance(content, dict)
                    else ""
                )
            )
        self._samples, joints, two_d = self._read_annotations(
            content["annotations"], layout.num_joints if layout else None
        )
        # Defaults by joint count: PYSKL's 3-D NTU pickles (25) and 2-D COCO pickles (17).
        defaults = {(NTU_25.num_joints, False): NTU_25, (COCO_17.num_joints, True): COCO_17}
        default = defaults.get((joints, two_d))
        self.layout = resolve_layout(self.path, joints, None, layout, layout_source, default)
        self.planar = two_d
        self._split_names = self._read_split_table(content["split"])
        self._benchmarks = self._group_benchmarks()
        self.benchmark = self._choose_benchmark(benchmark)
        largest = max((sample.label for sample in self._samples.values()), default=0)
        self.num_classes = _checked_classes(self.path, largest + 1, f"label {largest}")

    def _read_annotations(
        self, annotations: object, joints: int | None
    ) -> tuple[dict[str, _PysklSample], int, bool]:
        """Validate every annotation's fields and keypoint shape; index them by frame_dir.
        -> (samples, joints per body, whether the keypoints are 2-D with scores). Every sample
        must have `joints` joints (when given, else as many as the first)."""
        if not isinstance(annotations, (list, tuple)):
            raise MksgnError(f"{self.path}: 'annotations' must be a list of dicts")
        samples: dict[str, _PysklSample] = {}
        two_d: bool | None = None
        for index, annotation in enumerate(annotations):
            where = f"{self.path}: annotation {index}"
            if not isinstance(annotation, dict):
                raise MksgnError(f"{where} is a {type(annotation).__name__}, expected a dict")
            for field_name in ("frame_dir", "label", "keypoint"):
                if field_name not in annotation:
                    raise MksgnError(
                        f"{where} has no '{field_name}'; PYSKL annotations need frame_dir, label "
                        "and keypoint"
                    )
            name, label, keypoint = (annotation[k] for k in ("frame_dir", "label", "keypoint"))
            if not isinstance(name, str):
                raise MksgnError(f"{where}: frame_dir must be a string, got {name!r}")
            where = f"{where} ('{name}')"
            if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label < 0:
                raise MksgnError(f"{where}: label {label!r} is not a 0-based integer")
            if not isinstance(keypoint, np.ndarray) or keypoint.dtype.kind != "f":
                raise MksgnError(f"{where}: keypoint must be a float numpy array (M, T, V, 3)")
            shape = keypoint.shape
            if joints is None and len(shape) == 4:
                joints = shape[2]
            expected = joints if joints is not None else NUM_JOINTS
            score = annotation.get("keypoint_score")
            coords = 2 if score is not None else COORDS
            if (
                len(shape) != 4
                or shape[2] != expected
                or shape[3] != coords
                or not 1 <= shape[0] <= MAX_BODIES
                or shape[1] < 1
            ):
                hint = (
                    "; this looks like a 2D pose pickle: 2-D keypoints (M, T, V, 2) need "
                    "'keypoint_score' (M, T, V) beside them"
                    if len(shape) == 4 and shape[3] == 2 and score is None
                    else ""
                )
                what = "x, y" if score is not None else "xyz"
                raise MksgnError(
                    f"{where}: keypoint has shape {_shape_text(shape)}, expected (M, T, {expected}, "
                    f"{coords}) = bodies (1 or 2) x frames x {expected} joints x {what}{hint}"
                )
            if score is not None:
                if (
                    not isinstance(score, np.ndarray)
                    or score.dtype.kind != "f"
                    or score.shape != shape[:3]
                ):
                    raise MksgnError(
                        f"{where}: keypoint_score must be a float array shaped "
                        f"{_shape_text(shape[:3])} like keypoint without its last axis"
                    )
                # PYSKL stacks the score as the third channel, which a layout's channels count.
                keypoint = np.concatenate((keypoint, score[..., None].astype(keypoint.dtype)), -1)
            if two_d is not None and two_d != (score is not None):
                raise MksgnError(
                    f"{where}: mixes 2-D keypoints with scores and 3-D keypoints in one file"
                )
            two_d = score is not None
            total = annotation.get("total_frames", shape[1])
            if total != shape[1]:
                raise MksgnError(
                    f"{where}: total_frames is {total!r} but keypoint has {shape[1]} frames"
                )
            if name in samples:
                raise MksgnError(f"{where}: frame_dir '{name}' appears twice")
            samples[name] = _PysklSample(int(label), keypoint)
        return samples, joints if joints is not None else NUM_JOINTS, bool(two_d)

    def _read_split_table(self, table: object) -> dict[str, tuple[str, ...]]:
        """Validate the split table: every listed name must have an annotation."""
        if not isinstance(table, dict):
            raise MksgnError(f"{self.path}: 'split' must be a dict of split name -> sample names")
        splits: dict[str, tuple[str, ...]] = {}
        for key, names in table.items():
            if not isinstance(key, str) or not isinstance(names, (list, tuple, np.ndarray)):
                raise MksgnError(f"{self.path}: split {key!r} must map to a list of sample names")
            for name in names:
                if name not in self._samples:
                    raise MksgnError(
                        f"{self.path}: split '{key}' lists '{name}', which has no annotation"
                    )
            splits[key] = tuple(str(name) for name in names)
        return splits

    def _group_benchmarks(self) -> dict[str, dict[str, str]]:
        """Benchmark prefix -> {'train': key, 'test': key} from keys like 'xsub_train', 'xsub_val'."""
        benchmarks: dict[str, dict[str, str]] = {}
        for key in self._split_names:
            prefix, _, suffix = key.rpartition("_")
            role = _PYSKL_ROLE.get(suffix)
            if role is None:
                continue
            roles = benchmarks.setdefault(prefix, {})
            # A file with both *_val and *_test: the held-out *_test is the test split.
            if role not in roles or suffix == "test":
                roles[role] = key
        return benchmarks

    def _choose_benchmark(self, benchmark: str | None) -> str | None:
        """The given benchmark prefix, or the only one; None when several exist and none was given."""
        if benchmark is not None:
            if benchmark not in self._benchmarks:
                raise MksgnError(
                    f"{self.path}: no benchmark '{benchmark}' in its split table; available: "
                    f"{self._benchmark_list()}"
                )
            return benchmark
        return next(iter(self._benchmarks)) if len(self._benchmarks) == 1 else None

    def _benchmark_list(self) -> str:
        """Benchmark prefixes for messages."""
        return ", ".join(repr(b) for b in self._benchmarks) or "none"

    @property
    def benchmarks(self) -> tuple[str, ...]:
        """The benchmark prefixes of the split table (e.g. 'xsub', 'xview')."""
        return tuple(self._benchmarks)

    @property
    def splits(self) -> tuple[str, ...]:
        """'train'/'test' of the chosen benchmark, or every split key when none is chosen."""
        if self.benchmark is not None:
            return tuple(s for s in SPLITS if s in self._benchmarks[self.benchmark])
        return tuple(self._split_names)

    def _split_key(self, split: str) -> str:
        """The split table key for 'train'/'test' (or a split key given directly)."""
        if split in self._split_names:
            return split
        split = _canonical_split(split)
        if split in SPLITS:
            if self.benchmark is None:
                raise MksgnError(
                    f"{self.path}: holds several benchmarks ({self._benchmark_list()}); choose one "
                    "(benchmark=..., --benchmark)"
                    if self._benchmarks
                    else f"{self.path}: its split table has no *_train / *_val keys "
                    f"(has: {', '.join(self._split_names) or 'none'})"
                )
            if split in self._benchmarks[self.benchmark]:
                return self._benchmarks[self.benchmark][split]
        raise self._unknown_split(split)

    def split_shape(self, split: str) -> tuple[int, int, int]:
        """(N, longest T, 2): PYSKL samples are padded to the longest one of the split."""
        names = self._split_names[self._split_key(split)]
        frames = max((self._samples[name].keypoint.shape[1] for name in names), default=0)
        return len(names), frames, MAX_BODIES

    def _arrays(self, names: tuple[str, ...], split: str) -> SkeletonArrays:
        """Pad the named samples with zero frames and bodies into (n, 3, T_max, V, 2)."""
        frames = max((self._samples[name].keypoint.shape[1] for name in names), default=0)
        shape = (len(names), COORDS, frames, self.layout.num_joints, MAX_BODIES)
        _check_allocation(self.path, shape, f"split '{split}' padded to {frames} frames")
        data = np.zeros(shape, dtype=np.float32)
        labels = np.empty(len(names), dtype=np.int64)
        for index, name in enumerate(names):
            sample = self._samples[name]
            bodies, length = sample.keypoint.shape[:2]
            data[index, :, :length, :, :bodies] = sample.keypoint.transpose(3, 1, 2, 0)
            labels[index] = sample.label
        return SkeletonArrays(data, labels, names)

    def load(self, split: str) -> SkeletonArrays:
        """One split, zero-padded to its longest sample."""
        key = self._split_key(split)
        return self._arrays(self._split_names[key], key)

    def iter_chunks(self, split: str) -> Iterator[SkeletonArrays]:
        """Chunks of samples, each padded only to its own longest sample."""
        key = self._split_key(split)
        names = self._split_names[key]
        _, frames, bodies = self.split_shape(key)
        per_frame = COORDS * self.layout.num_joints * bodies * 4
        step = max(1, base.CHUNK_BYTES // (max(frames, 1) * per_frame))
        for start in range(0, len(names), step):
            yield self._arrays(names[start : start + step], key)
