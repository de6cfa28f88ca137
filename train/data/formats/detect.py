"""One entry point over every format: detect a file's format, open it, load a split, count classes."""

from __future__ import annotations

import os
from pathlib import Path

from mksgn.errors import MksgnError
from mksgn.train.data.formats.arrays import (
    SkeletonArrays,
)
from mksgn.train.data.formats.base import (
    _STGCN_LABEL_NAME,
    _STGCN_PREFIX,
    CTRGCN_NPZ,
    PYSKL_PKL,
    STGCN_NPY,
    DatasetFile,
    supported_formats_text,
)
from mksgn.train.data.formats.ctrgcn import CtrgcnNpz
from mksgn.train.data.formats.pyskl import PysklPickle
from mksgn.train.data.formats.stgcn import StgcnNpy
from mksgn.train.data.layout import SkeletonLayout


def detect_format(path: str | os.PathLike[str]) -> str:
    """Which supported format `path` is in, by extension and content; unknown -> MksgnError."""
    path = Path(path)
    if path.is_dir():
        data_files = (f"{p}_data{s}.npy" for p in _STGCN_PREFIX.values() for s in ("_joint", ""))
        if any((path / name).is_file() for name in data_files):
            return STGCN_NPY
        raise MksgnError(
            f"{path}: a folder is read as an ST-GCN dataset but it has no train_data_joint.npy or "
            f"val_data_joint.npy. Supported formats: {supported_formats_text()}"
        )
    try:
        with open(path, "rb") as handle:
            magic = handle.read(8)
    except OSError as error:
        raise MksgnError(f"{path}: cannot read the file: {error.strerror or error}") from None
    suffix = path.suffix.lower()
    if suffix == ".npz" or magic.startswith(b"PK\x03\x04"):
        return CTRGCN_NPZ
    if suffix == ".npy" or magic.startswith(b"\x93NUMPY"):
        return STGCN_NPY
    if suffix in (".pkl", ".pickle") or magic.startswith(b"\x80"):
        return STGCN_NPY if _STGCN_LABEL_NAME.match(path.name) else PYSKL_PKL
    raise MksgnError(
        f"{path}: unknown dataset format. Supported formats: {supported_formats_text()}"
    )


def open_dataset(
    path: str | os.PathLike[str],
    benchmark: str | None = None,
    layout: SkeletonLayout | None = None,
    layout_source: str = "--layout",
) -> DatasetFile:
    """Open and validate a dataset in any supported format (big arrays are not read yet).

    `layout` is the skeleton expected (--layout, or the model's): a file that records another is
    an error naming both (`layout_source` says where the expected one came from); a file that
    records none is read with it, else with the default for its joint count.
    """
    readers = {CTRGCN_NPZ: CtrgcnNpz, STGCN_NPY: StgcnNpy, PYSKL_PKL: PysklPickle}
    return readers[detect_format(path)](path, layout, layout_source, benchmark)


def load_split(
    path: str | os.PathLike[str], split: str = "train", benchmark: str | None = None
) -> SkeletonArrays:
    """One split ('train' or 'test') of a dataset in any supported format."""
    return open_dataset(path, benchmark).load(split)


def class_names(path: str | os.PathLike[str]) -> tuple[str, ...] | None:
    """Class names stored with the dataset (our npz writer stores them), else None."""
    return open_dataset(path).class_names if detect_format(path) == CTRGCN_NPZ else None


def num_classes(path: str | os.PathLike[str], benchmark: str | None = None) -> int:
    """Number of classes: one-hot width or class names, else the largest label + 1."""
    return open_dataset(path, benchmark).num_classes
