"""Reader of ST-GCN / 2s-AGCN folders: {train,val}_data[_joint].npy with {train,val}_label.pkl."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

import mksgn.train.data.formats.base as base
from mksgn.errors import MksgnError
from mksgn.train.data.formats.arrays import (
    COORDS,
    MAX_BODIES,
    SPLITS,
    SkeletonArrays,
)
from mksgn.train.data.formats.base import (
    _STGCN_DATA_NAME,
    _STGCN_LABEL_NAME,
    _STGCN_PREFIX,
    READ_ERRORS,
    STGCN_NPY,
    DatasetFile,
    _canonical_split,
    _check_allocation,
    _checked_classes,
    _shape_text,
    map_npy,
    resolve_layout,
)
from mksgn.train.data.layout import NTU_25, SkeletonLayout
from mksgn.train.data.safe_pickle import load_pickle


def _stgcn_folder_suffix(folder: Path) -> str:
    """ "_joint" when the folder holds 2s-AGCN's *_data_joint.npy, "" for the original ST-GCN's
    *_data.npy (and "_joint", the name error messages suggest, when it holds neither)."""
    for suffix in ("_joint", ""):
        if any((folder / f"{p}_data{suffix}.npy").is_file() for p in _STGCN_PREFIX.values()):
            return suffix
    return "_joint"


def _stgcn_label_file(
    path: Path, samples: int, data_file: Path
) -> tuple[tuple[str, ...], np.ndarray]:
    """Read and check an ST-GCN label pickle: (sample_names, 0-based labels) for `samples` samples."""
    content = load_pickle(path)
    if not (isinstance(content, (tuple, list)) and len(content) == 2):
        raise MksgnError(
            f"{path}: expected a pickle of (sample_names, labels), got a "
            f"{type(content).__name__}"
            + (f" of length {len(content)}" if isinstance(content, (tuple, list)) else "")
        )
    raw_names, raw_labels = content
    if not isinstance(raw_names, (list, tuple, np.ndarray)) or not all(
        isinstance(name, (str, bytes)) for name in raw_names
    ):
        raise MksgnError(f"{path}: the first element must be a list of sample names (strings)")
    names = tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in raw_names)
    if isinstance(raw_labels, np.ndarray):
        labels = raw_labels
    elif isinstance(raw_labels, (list, tuple)) and all(
        isinstance(label, (int, np.integer)) and not isinstance(label, bool) for label in raw_labels
    ):
        try:
            labels = np.array(raw_labels, dtype=np.int64)
        except OverflowError:
            raise MksgnError(f"{path}: a label is beyond the 64-bit integer range") from None
    else:
        raise MksgnError(f"{path}: the second element must be a list of integer labels")
    if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
        raise MksgnError(
            f"{path}: labels have shape {_shape_text(labels.shape)} and dtype {labels.dtype}, "
            "expected a vector of integers"
        )
    labels = labels.astype(np.int64)
    if len(names) != len(labels):
        raise MksgnError(f"{path}: {len(names)} sample names but {len(labels)} labels")
    if len(labels) != samples:
        raise MksgnError(
            f"{path}: {len(labels)} labels but {data_file} holds {samples} samples; "
            "the label file and the data file must come from the same split"
        )
    if labels.size and labels.min() < 0:
        raise MksgnError(f"{path}: label {labels.min()} is negative; labels must be 0-based")
    return names, labels


class StgcnNpy(DatasetFile):
    """ST-GCN / 2s-AGCN: {train,val}_data[_<modality>].npy (N, 3, T, V, M) + {train,val}_label.pkl."""

    format = STGCN_NPY

    def _open(
        self, layout: SkeletonLayout | None, layout_source: str, benchmark: str | None
    ) -> None:
        folder, suffix = self._folder_and_suffix(self.path)
        # The file records no layout: the one given (--layout or the model's), else NTU's.
        self.layout = resolve_layout(
            self.path, (layout or NTU_25).num_joints, None, layout, layout_source, NTU_25
        )
        self._data_files = {
            split: folder / f"{prefix}_data{suffix}.npy" for split, prefix in _STGCN_PREFIX.items()
        }
        self._label_files = {
            split: folder / f"{prefix}_label.pkl" for split, prefix in _STGCN_PREFIX.items()
        }
        self._arrays: dict[str, np.ndarray] = {}
        self._labels: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
        for split in SPLITS:
            if self._data_files[split].is_file():
                self._arrays[split] = self._open_data(self._data_files[split], layout)
                if not self._label_files[split].is_file():
                    raise MksgnError(
                        f"{self._label_files[split]}: missing; ST-GCN data "
                        f"{self._data_files[split].name} needs its label pickle beside it"
                    )
                self._labels[split] = _stgcn_label_file(
                    self._label_files[split],
                    self._arrays[split].shape[0],
                    self._data_files[split],
                )
        if not self._arrays:
            raise MksgnError(
                f"{folder}: no {_STGCN_PREFIX['train']}_data{suffix}.npy or "
                f"{_STGCN_PREFIX['test']}_data{suffix}.npy; an ST-GCN dataset folder holds "
                "train_data_joint.npy (or train_data.npy), train_label.pkl, val_data_joint.npy, "
                "val_label.pkl"
            )
        self.num_classes = 1
        for split, (_, labels) in self._labels.items():
            largest = int(labels.max()) if labels.size else 0
            self.num_classes = max(
                self.num_classes,
                _checked_classes(self._label_files[split], largest + 1, f"label {largest}"),
            )

    @staticmethod
    def _folder_and_suffix(path: Path) -> tuple[Path, str]:
        """The dataset folder and the data files' suffix ("_joint", "_bone", ... or ST-GCN's
        "") from what the user passed."""
        if path.is_dir() or _STGCN_LABEL_NAME.match(path.name):
            folder = path if path.is_dir() else path.parent
            return folder, _stgcn_folder_suffix(folder)
        data_name = _STGCN_DATA_NAME.match(path.name)
        if data_name:
            return path.parent, data_name.group(2) or ""
        raise MksgnError(
            f"{path}: an ST-GCN array must be named train_data_joint.npy or val_data_joint.npy "
            "(any modality: *_data_bone.npy, ...) with train_label.pkl / val_label.pkl beside it"
        )

    @staticmethod
    def _open_data(path: Path, layout: SkeletonLayout | None) -> np.ndarray:
        """Memory-map the array after checking its header: nothing is read into memory."""
        joints = (layout or NTU_25).num_joints
        try:
            data = map_npy(path)
        except READ_ERRORS as error:
            raise MksgnError(
                f"{path}: not a readable .npy array ({error}); write the file again"
            ) from None
        shape = data.shape
        if (
            len(shape) != 5
            or shape[1] != COORDS
            or shape[3] != joints
            or not 1 <= shape[4] <= MAX_BODIES
            or shape[2] < 1
        ):
            hint = "" if layout else "; for another skeleton pass --layout NAME|FILE.json"
            raise MksgnError(
                f"{path}: array has shape {_shape_text(shape)}, expected (N, 3, T, {joints}, M) = "
                f"samples x xyz x frames x {joints} joints x bodies (M = 1 or 2){hint}"
            )
        if data.dtype.kind != "f":
            raise MksgnError(f"{path}: array has dtype {data.dtype}, expected float32")
        return data

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits whose files exist (train = train_*, test = val_*)."""
        return tuple(split for split in SPLITS if split in self._arrays)

    def _split(self, split: str) -> str:
        """Validate a split name against the files present."""
        split = _canonical_split(split)
        if split not in SPLITS:
            raise self._unknown_split(split)
        if split not in self._arrays:
            raise MksgnError(
                f"{self._data_files[split]}: missing; the '{split}' split of an ST-GCN dataset is "
                f"{self._data_files[split].name} + {self._label_files[split].name}"
            )
        return split

    def split_shape(self, split: str) -> tuple[int, int, int]:
        """(N, T, M) from the array header."""
        n, _, t, _, m = self._arrays[self._split(split)].shape
        return int(n), int(t), int(m)

    def load(self, split: str) -> SkeletonArrays:
        """The memory-mapped array (float32 files stay on disk until indexed) with its labels."""
        split = self._split(split)
        data = self._arrays[split]
        if data.dtype != np.float32:
            _check_allocation(self._data_files[split], data.shape, f"split '{split}'")
            data = np.asarray(data, dtype=np.float32)
        names, labels = self._labels[split]
        return SkeletonArrays(data, labels, names)

    def iter_chunks(self, split: str) -> Iterator[SkeletonArrays]:
        """Consecutive slices of the memory map, read into memory one chunk at a time."""
        split = self._split(split)
        data = self._arrays[split]
        names, labels = self._labels[split]
        sample_bytes = math.prod(data.shape[1:]) * 4
        step = max(1, base.CHUNK_BYTES // max(sample_bytes, 1))
        for start in range(0, data.shape[0], step):
            stop = start + step
            yield SkeletonArrays(
                np.asarray(data[start:stop], dtype=np.float32),
                labels[start:stop],
                names[start:stop],
            )
