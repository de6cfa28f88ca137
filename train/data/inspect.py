"""`mksgn data inspect`: what a skeleton dataset holds, per split, read chunk by chunk."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from mksgn.train.data.formats import (
    COORDS,
    FORMAT_DESCRIPTIONS,
    PysklPickle,
    SkeletonArrays,
    open_dataset,
)
from mksgn.train.data.layout import SkeletonLayout

AXES = ("x", "y", "z")
# Above this many classes the text summary gives the range of per-class counts, not every count.
MAX_LISTED_CLASSES = 20


class _SplitStatistics:
    """Running statistics of one split, fed one chunk of samples at a time."""

    def __init__(self, num_classes: int, frames: int, bodies: int) -> None:
        self.frames = frames
        self.bodies = bodies
        self.samples = 0
        self.class_counts = np.zeros(num_classes, dtype=np.int64)
        self.second_body_samples = 0
        self.empty_samples = 0
        self.non_finite_values = 0
        self.lengths: list[np.ndarray] = []
        self.coord_min = np.full(COORDS, np.inf)
        self.coord_max = np.full(COORDS, -np.inf)

    def update(self, chunk: SkeletonArrays) -> None:
        """Add a chunk (n, 3, T, V, M) to the statistics."""
        data = chunk.data
        finite = np.isfinite(data)
        self.non_finite_values += int(data.size - finite.sum())
        clean = np.where(finite, data, 0.0)
        # A joint at exactly (0, 0, 0) is padding or a missing body, as in every NTU pipeline.
        present = (clean != 0).any(axis=1)  # (n, T, V, M)
        valid_frames = present.any(axis=(2, 3))  # (n, T)
        lengths = valid_frames.sum(axis=1)
        self.lengths.append(lengths)
        self.empty_samples += int((lengths == 0).sum())
        if present.shape[-1] > 1:
            self.second_body_samples += int(present[..., 1].any(axis=(1, 2)).sum())
        for axis in range(COORDS):
            values = clean[:, axis][present]
            if values.size:
                self.coord_min[axis] = min(self.coord_min[axis], float(values.min()))
                self.coord_max[axis] = max(self.coord_max[axis], float(values.max()))
        counts = np.bincount(chunk.labels, minlength=len(self.class_counts))
        self.class_counts = np.pad(self.class_counts, (0, len(counts) - len(self.class_counts)))
        self.class_counts += counts
        self.samples += len(chunk)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(0, dtype=np.int64)
        has_values = bool(np.isfinite(self.coord_min).all())
        return {
            "samples": self.samples,
            "frames": self.frames,
            "bodies": self.bodies,
            "second_body_samples": self.second_body_samples,
            "empty_samples": self.empty_samples,
            "valid_frames": (
                {
                    "min": int(lengths.min()),
                    "mean": round(float(lengths.mean()), 3),
                    "max": int(lengths.max()),
                }
                if lengths.size
                else None
            ),
            "value_range": (
                {
                    axis: [float(self.coord_min[i]), float(self.coord_max[i])]
                    for i, axis in enumerate(AXES)
                }
                if has_values
                else None
            ),
            "non_finite_values": self.non_finite_values,
            "class_counts": [int(c) for c in self.class_counts],
        }


def inspect_dataset(
    path: str | os.PathLike[str],
    layout: SkeletonLayout | None = None,
    benchmark: str | None = None,
) -> dict[str, Any]:
    """Describe a dataset in any supported format: its layout, per split samples, classes,
    frames, bodies, ranges (`layout`, `benchmark`: as for open_dataset)."""
    source = open_dataset(path, benchmark, layout)
    splits: dict[str, Any] = {}
    for split in source.splits:
        _, frames, bodies = source.split_shape(split)
        statistics = _SplitStatistics(source.num_classes, frames, bodies)
        for chunk in source.iter_chunks(split):
            statistics.update(chunk)
        splits[split] = statistics.to_dict()
    info: dict[str, Any] = {
        "path": str(path),
        "format": source.format,
        "classes": source.num_classes,
        "class_names": list(source.class_names) if source.class_names is not None else None,
        "layout": source.layout.to_dict(),
    }
    if isinstance(source, PysklPickle):
        info["benchmarks"] = list(source.benchmarks)
    info["splits"] = splits
    return info


def _number(value: float) -> str:
    """A coordinate with four significant digits."""
    return f"{value:.4g}"


def _split_lines(name: str, split: dict[str, Any]) -> list[str]:
    """The text lines of one split."""
    lines = [
        f"  {name}: {split['samples']} samples, {split['frames']} frames, {split['bodies']} "
        f"bodies (second body present in {split['second_body_samples']})"
    ]
    lengths = split["valid_frames"]
    if lengths is not None:
        lines.append(
            f"    valid frames per sample: min {lengths['min']}, mean {lengths['mean']:.1f}, "
            f"max {lengths['max']}; {split['empty_samples']} empty samples"
        )
    ranges = split["value_range"]
    if ranges is not None:
        lines.append(
            "    values: "
            + "  ".join(
                f"{axis} {_number(low)} .. {_number(high)}" for axis, (low, high) in ranges.items()
            )
        )
    if split["non_finite_values"]:
        lines.append(f"    WARNING: {split['non_finite_values']} NaN or infinite values")
    counts = split["class_counts"]
    if counts and len(counts) <= MAX_LISTED_CLASSES:
        lines.append("    per class: " + " ".join(str(c) for c in counts))
    elif counts:
        lines.append(
            f"    per class: {min(counts)} to {max(counts)} samples "
            f"({sum(1 for c in counts if c == 0)} classes without samples)"
        )
    return lines


def format_inspection(info: dict[str, Any]) -> str:
    """A readable multi-line summary of `inspect_dataset`'s result."""
    description = FORMAT_DESCRIPTIONS.get(info["format"], info["format"])
    lines = [
        f"{info['path']}: {info['format']} ({description})",
        f"  layout: {SkeletonLayout.from_dict(info['layout']).describe()}",
        f"  classes: {info['classes']}",
    ]
    names = info.get("class_names")
    if names:
        shown = ", ".join(names[:MAX_LISTED_CLASSES])
        more = f", ... ({len(names)} in all)" if len(names) > MAX_LISTED_CLASSES else ""
        lines.append(f"  class names: {shown}{more}")
    if info.get("benchmarks"):
        lines.append(f"  benchmarks: {', '.join(info['benchmarks'])}")
    for name, split in info["splits"].items():
        lines.extend(_split_lines(name, split))
    return "\n".join(lines)
