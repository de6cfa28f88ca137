"""Reader of CTR-GCN / InfoGCN .npz files (x_train, y_train, x_test, y_test), without pickles."""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

import mksgn.train.data.formats.base as base
from mksgn.errors import MksgnError
from mksgn.train.data.formats.arrays import (
    COORDS,
    LAYOUT_KEY,
    MAX_BODIES,
    NUM_JOINTS,
    SPLITS,
    SkeletonArrays,
    from_ctrgcn_layout,
)
from mksgn.train.data.formats.base import (
    CTRGCN_NPZ,
    CTRGCN_REQUIRED_KEYS,
    READ_ERRORS,
    DatasetFile,
    _canonical_split,
    _check_allocation,
    _checked_classes,
    _shape_text,
    _texts,
    resolve_layout,
)
from mksgn.train.data.layout import NTU_25, SkeletonLayout


@dataclass(frozen=True)
class _NpyMember:
    """The header of one array inside an npz, read without reading its data."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    stored_bytes: int
    header_bytes: int

    @property
    def data_bytes(self) -> int:
        """Bytes the header promises."""
        return math.prod(self.shape) * self.dtype.itemsize


def _read_npy_header(handle: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Read the magic and header of an .npy stream, leaving it at the first data byte."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(handle)
    raise ValueError(f"unsupported .npy format version {version}")


def _npz_members(path: Path) -> dict[str, _NpyMember]:
    """Headers of every array in an npz, so keys and shapes are checked before any data is read."""
    members: dict[str, _NpyMember] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                key = info.filename[: -len(".npy")]
                try:
                    with archive.open(info) as handle:
                        shape, fortran, dtype = _read_npy_header(handle)
                        header_bytes = handle.tell()
                except READ_ERRORS as error:
                    raise MksgnError(
                        f"{path}: key '{key}' is not a readable .npy array ({error}); "
                        "write the file again"
                    ) from None
                members[key] = _NpyMember(
                    tuple(shape), np.dtype(dtype), fortran, info.file_size, header_bytes
                )
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as error:
        raise MksgnError(
            f"{path}: not a readable .npz (zip) archive ({error}); a CTR-GCN npz is written by "
            "numpy.savez with keys x_train, y_train, x_test, y_test"
        ) from None
    for key, member in members.items():
        if member.dtype.hasobject:
            raise MksgnError(
                f"{path}: key '{key}' holds Python objects (dtype object), which mksgn does not "
                "unpickle; store numbers and strings only"
            )
        if member.stored_bytes < member.header_bytes + member.data_bytes:
            raise MksgnError(
                f"{path}: key '{key}' is truncated: its header says shape "
                f"{_shape_text(member.shape)} ({member.data_bytes} bytes) but it holds "
                f"{member.stored_bytes - member.header_bytes} bytes; write the file again"
            )
    return members


class CtrgcnNpz(DatasetFile):
    """CTR-GCN / InfoGCN npz: x_* (N, T, M*V*3) float (NTU: 150 = 2 bodies x 25 joints x xyz),
    y_* one-hot (N, classes) or labels (N,); mksgn adds an optional `layout` JSON string."""

    format = CTRGCN_NPZ

    def _open(
        self, layout: SkeletonLayout | None, layout_source: str, benchmark: str | None
    ) -> None:
        self._members = _npz_members(self.path)
        self._check_keys()
        small = self._load_small_arrays()
        stored = (
            SkeletonLayout.from_json(str(small[LAYOUT_KEY]), f"{self.path}: key '{LAYOUT_KEY}'")
            if LAYOUT_KEY in small
            else None
        )
        self.layout, self.bodies = self._layout_and_bodies(stored, layout, layout_source)
        self.class_names = _texts(small["class_names"]) if "class_names" in small else None
        self.num_classes = self._count_classes(small)
        self._labels = {
            split: self._labels_from_y(f"y_{split}", small[f"y_{split}"]) for split in SPLITS
        }
        self._names = {
            split: _texts(small[f"names_{split}"]) if f"names_{split}" in small else None
            for split in SPLITS
        }

    @property
    def splits(self) -> tuple[str, ...]:
        """Both splits are required in this format."""
        return SPLITS

    def _error(self, key: str, problem: str) -> MksgnError:
        """An error naming this file and a key."""
        return MksgnError(f"{self.path}: key '{key}' {problem}")

    def _check_keys(self) -> None:
        """Key presence, shapes and dtypes, from the headers alone."""
        for key in CTRGCN_REQUIRED_KEYS:
            if key not in self._members:
                present = ", ".join(sorted(self._members)) or "none"
                raise MksgnError(
                    f"{self.path}: key '{key}' is missing (keys present: {present}); a CTR-GCN npz "
                    "needs x_train, y_train, x_test and y_test"
                )
        for split in SPLITS:
            x, y = self._members[f"x_{split}"], self._members[f"y_{split}"]
            if len(x.shape) != 3 or x.shape[2] < 1 or x.shape[1] < 1:
                raise self._error(
                    f"x_{split}",
                    f"has shape {_shape_text(x.shape)}, expected (N, T, M*V*3) = bodies x joints x "
                    f"xyz, e.g. (N, T, {MAX_BODIES * NUM_JOINTS * COORDS}) for NTU",
                )
            if x.dtype.kind != "f":
                raise self._error(f"x_{split}", f"has dtype {x.dtype}, expected float32")
            n = x.shape[0]
            one_hot_shape = len(y.shape) == 2 and y.shape[0] == n and y.shape[1] >= 1
            if one_hot_shape:
                _checked_classes(self.path, y.shape[1], f"the one-hot width of 'y_{split}'")
            label_shape = len(y.shape) == 1 and y.shape[0] == n and y.dtype.kind in "iu"
            if not (one_hot_shape and y.dtype.kind in "fiub") and not label_shape:
                raise self._error(
                    f"y_{split}",
                    f"has shape {_shape_text(y.shape)} and dtype {y.dtype}, expected one-hot "
                    f"(N, classes) or integer labels (N,) with N = {n} as in 'x_{split}'",
                )
            names = self._members.get(f"names_{split}")
            if names is not None and (names.shape != (n,) or names.dtype.kind not in "US"):
                raise self._error(
                    f"names_{split}",
                    f"has shape {_shape_text(names.shape)} and dtype {names.dtype}, expected "
                    f"({n},) strings",
                )
        layout = self._members.get(LAYOUT_KEY)
        if layout is not None and (layout.shape != () or layout.dtype.kind != "U"):
            raise self._error(
                LAYOUT_KEY, f"has shape {_shape_text(layout.shape)}, expected one JSON string"
            )
        names = self._members.get("class_names")
        if names is not None and (len(names.shape) != 1 or names.dtype.kind not in "US"):
            raise self._error(
                "class_names", f"has shape {_shape_text(names.shape)}, expected (classes,) strings"
            )
        if names is not None:
            _checked_classes(self.path, names.shape[0], "'class_names'")

    def _layout_and_bodies(
        self, stored: SkeletonLayout | None, expected: SkeletonLayout | None, source: str
    ) -> tuple[SkeletonLayout, int]:
        """The layout and the bodies per frame (1 or 2) that explain the width of x_*."""
        known = stored or expected
        joints = known.num_joints if known is not None else NUM_JOINTS
        per_body = joints * COORDS
        widths = {split: self._members[f"x_{split}"].shape[2] for split in SPLITS}
        fitting = [w for w in widths.values() if w % per_body == 0 and w <= MAX_BODIES * per_body]
        expected_width = max(fitting, default=MAX_BODIES * per_body)
        # Both splits must hold the same bodies: the split that differs (the narrower) is named.
        for split in sorted(SPLITS, key=lambda name: widths[name]):
            if widths[split] == expected_width:
                continue
            if stored is None and expected is not None:
                hint = f" ({source} uses layout {expected.describe()})"
            elif known is None and widths[split] not in fitting:
                hint = "; for another skeleton pass --layout NAME|FILE.json"
            else:
                hint = ""
            raise self._error(
                f"x_{split}",
                f"has shape {_shape_text(self._members[f'x_{split}'].shape)}, expected (N, T, "
                f"{expected_width}) = {expected_width // per_body} bodies x {joints} joints x xyz"
                + hint,
            )
        bodies = expected_width // per_body
        layout = resolve_layout(self.path, joints, stored, expected, source, NTU_25)
        return layout, bodies

    def _load_small_arrays(self) -> dict[str, np.ndarray]:
        """Labels and names (everything but x_*), which are small."""
        keys = [k for k in self._members if not k.startswith("x_")]
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                return {key: archive[key] for key in keys}
        except READ_ERRORS as error:
            raise MksgnError(f"{self.path}: cannot read its arrays ({error})") from None

    def _count_classes(self, small: dict[str, np.ndarray]) -> int:
        """Classes: one-hot width (both splits agree), else class_names, else the largest label + 1."""
        widths = {small[f"y_{s}"].shape[1] for s in SPLITS if small[f"y_{s}"].ndim == 2}
        if len(widths) > 1:
            raise MksgnError(
                f"{self.path}: 'y_train' and 'y_test' have different numbers of classes "
                f"({small['y_train'].shape[-1]} and {small['y_test'].shape[-1]} columns)"
            )
        named = len(self.class_names) if self.class_names is not None else None
        if widths:
            (width,) = widths
            if named is not None and named != width:
                raise self._error(
                    "class_names", f"has {named} names for {width} one-hot classes in 'y_train'"
                )
            return int(width)
        if named is not None:
            return named
        largest = max(
            (int(small[f"y_{s}"].max()) for s in SPLITS if small[f"y_{s}"].size), default=0
        )
        return _checked_classes(self.path, largest + 1, f"label {largest}")

    def _labels_from_y(self, key: str, y: np.ndarray) -> np.ndarray:
        """0-based int64 labels from one-hot rows (argmax, as CTR-GCN does) or a label vector."""
        if y.ndim == 1:
            labels = y.astype(np.int64)
        else:
            labels = y.argmax(axis=1).astype(np.int64)
            rows = np.arange(len(y))
            empty = np.flatnonzero(~(y[rows, labels] > 0))
            if empty.size:
                raise self._error(
                    key, f"row {empty[0]} has no positive entry; expected one-hot rows"
                )
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            bad = labels[(labels < 0) | (labels >= self.num_classes)][0]
            raise self._error(
                key, f"holds label {bad}, outside 0..{self.num_classes - 1} (0-based labels)"
            )
        return labels

    def split_shape(self, split: str) -> tuple[int, int, int]:
        """(N, T, M) from the header of x_<split>."""
        split = self._split(split)
        n, t, _ = self._members[f"x_{split}"].shape
        return int(n), int(t), self.bodies

    def _split(self, split: str) -> str:
        """Validate a split name."""
        split = _canonical_split(split)
        if split not in SPLITS:
            raise self._unknown_split(split)
        return split

    def _row_chunks(self, split: str) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows (n, T, M*V*3)) of x_<split>, streamed out of the archive."""
        key = f"x_{split}"
        member = self._members[key]
        n, t, width = member.shape
        row_bytes = t * width * member.dtype.itemsize
        rows_per_chunk = max(1, base.CHUNK_BYTES // max(row_bytes, 1))
        try:
            if member.fortran_order:  # not what numpy.savez writes from C arrays; load whole
                with np.load(self.path, allow_pickle=False) as archive:
                    x = archive[key]
                for start in range(0, n, rows_per_chunk):
                    yield start, x[start : start + rows_per_chunk]
                return
            with zipfile.ZipFile(self.path) as archive, archive.open(f"{key}.npy") as handle:
                _read_npy_header(handle)
                for start in range(0, n, rows_per_chunk):
                    count = min(rows_per_chunk, n - start)
                    raw = handle.read(count * row_bytes)
                    if len(raw) != count * row_bytes:
                        raise self._error(key, "is truncated; write the file again")
                    yield start, np.frombuffer(raw, dtype=member.dtype).reshape(count, t, width)
        except READ_ERRORS as error:
            raise self._error(key, f"cannot be read ({error}); write the file again") from None

    def load(self, split: str) -> SkeletonArrays:
        """Convert x_<split> chunk by chunk into a preallocated (N, 3, T, V, M) array."""
        split = self._split(split)
        n, t, m = self.split_shape(split)
        shape = (n, COORDS, t, self.layout.num_joints, m)
        _check_allocation(self.path, shape, f"split '{split}'")
        data = np.empty(shape, dtype=np.float32)
        for start, rows in self._row_chunks(split):
            data[start : start + len(rows)] = from_ctrgcn_layout(
                rows, self.layout.num_joints, self.bodies
            )
        return SkeletonArrays(data, self._labels[split], self._names[split])

    def iter_chunks(self, split: str) -> Iterator[SkeletonArrays]:
        """Consecutive chunks of samples, converted to (n, 3, T, V, M)."""
        split = self._split(split)
        names = self._names[split]
        for start, rows in self._row_chunks(split):
            stop = start + len(rows)
            yield SkeletonArrays(
                from_ctrgcn_layout(rows, self.layout.num_joints, self.bodies),
                self._labels[split][start:stop],
                names[start:stop] if names is not None else None,
            )
