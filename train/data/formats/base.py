"""What every reader shares: format names, read errors, chunk sizes, split names, class and
allocation checks, layout resolution, and the DatasetFile interface."""

from __future__ import annotations

import abc
import math
import os
import re
import tokenize
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mksgn.errors import MksgnError
from mksgn.train.data.formats.arrays import SkeletonArrays
from mksgn.train.data.layout import BUILTIN_LAYOUTS, SkeletonLayout

# ---------------------------------------------------------------------------------------------
# Readers for the preprocessed formats users already have: one DatasetFile interface over all.
# ---------------------------------------------------------------------------------------------

CTRGCN_NPZ = "ctrgcn-npz"
STGCN_NPY = "stgcn-npy"
PYSKL_PKL = "pyskl-pkl"
FORMAT_DESCRIPTIONS = {
    CTRGCN_NPZ: "CTR-GCN / InfoGCN .npz (x_train, y_train, x_test, y_test)",
    STGCN_NPY: "ST-GCN / 2s-AGCN folder or {train,val}_data[_joint].npy with {train,val}_label.pkl",
    PYSKL_PKL: "PYSKL .pkl (dict with 'split' and 'annotations')",
}
CTRGCN_REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
# What reading a damaged archive or .npy header can raise: numpy parses the header with Python's
# tokenizer (TokenError, SyntaxError), a memory map of an overflowing shape fails with TypeError,
# zipfile and zlib have their own errors.
READ_ERRORS = (
    ValueError,
    TypeError,
    OverflowError,
    MemoryError,
    OSError,
    EOFError,
    NotImplementedError,  # zipfile: an unknown compression method
    RuntimeError,  # zipfile: an encrypted member
    SyntaxError,
    tokenize.TokenError,
    zipfile.BadZipFile,
    zlib.error,
)


def map_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """Memory-map an .npy file without pickles: a header declaring more data than the file holds
    fails here instead of allocating it. An absurd declared shape overflows numpy's size product
    before failing; errstate keeps that RuntimeWarning from printing ahead of the Error line."""
    with np.errstate(over="ignore"):
        return np.load(path, mmap_mode="r", allow_pickle=False)


# Streaming reads convert this many bytes of samples at a time (bounded memory for inspect/load).
CHUNK_BYTES = 64 << 20
# Skeleton benchmarks have at most a few hundred classes; models and class counters allocate per
# class, so a label such as 10**12 in a downloaded file must not become the class count.
MAX_CLASSES = 10_000

# 2s-AGCN writes {train,val}_data_<modality>.npy; the original ST-GCN wrote {train,val}_data.npy.
_STGCN_DATA_NAME = re.compile(r"^(train|val)_data(_\w+)?\.npy$")
_STGCN_LABEL_NAME = re.compile(r"^(train|val)_label\.pkl$")
_STGCN_PREFIX = {"train": "train", "test": "val"}
_SPLIT_ALIASES = {"val": "test"}
_PYSKL_ROLE = {"train": "train", "val": "test", "test": "test"}


def supported_formats_text() -> str:
    """One line per supported format, for error messages."""
    return "; ".join(f"{name}: {text}" for name, text in FORMAT_DESCRIPTIONS.items())


def _shape_text(shape: tuple[int, ...]) -> str:
    """A shape as Python prints it, (10,) included."""
    return str(tuple(int(d) for d in shape))


def _check_allocation(path: object, shape: tuple[int, ...], what: str) -> None:
    """Refuse a float32 array the machine cannot hold, before trying to allocate it."""
    needed = math.prod(shape) * 4
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not every platform reports it
        return
    if needed > physical:
        raise MksgnError(
            f"{path}: {what} needs a float32 array of shape {_shape_text(shape)} "
            f"({needed / 2**30:.1f} GiB), more than this machine's {physical / 2**30:.1f} GiB of "
            "memory; use a machine with more memory or a smaller subset"
        )


def _checked_classes(path: object, count: int, source: str) -> int:
    """A class count read from a file, refused when it is beyond MAX_CLASSES."""
    if count > MAX_CLASSES:
        raise MksgnError(
            f"{path}: {source} implies {count} classes, more than the {MAX_CLASSES} mksgn accepts; "
            "labels must be 0-based class indices"
        )
    return count


def _texts(values: np.ndarray) -> tuple[str, ...]:
    """Unicode or byte-string array -> tuple of str (bytes as latin-1, as NumPy stores 'S')."""
    return tuple(v.decode("latin1") if isinstance(v, bytes) else str(v) for v in values.tolist())


def _canonical_split(split: str) -> str:
    """'val' is the ST-GCN/PYSKL name of the test split."""
    return _SPLIT_ALIASES.get(split, split)


def resolve_layout(
    path: object,
    joints: int,
    stored: SkeletonLayout | None,
    expected: SkeletonLayout | None,
    expected_source: str,
    default: SkeletonLayout | None,
) -> SkeletonLayout:
    """The layout a file is read with: the one it records, else the expected one (--layout or
    the model's), else the default for its joint count; a conflict is an error naming both."""
    if stored is not None and expected is not None and stored != expected:
        raise MksgnError(
            f"{path} holds skeletons of layout {stored.describe()} but {expected_source} uses "
            f"layout {expected.describe()}; use data and a model of the same skeleton"
        )
    layout = stored or expected or default
    if layout is None:
        raise MksgnError(
            f"{path}: its skeletons have {joints} joints and it records no layout; pass --layout "
            f"NAME|FILE.json (built in: {', '.join(BUILTIN_LAYOUTS)})"
        )
    if layout.num_joints != joints:
        raise MksgnError(
            f"{path}: its skeletons have {joints} joints but layout {layout.describe()} has "
            f"{layout.num_joints}; pass the --layout of a {joints}-joint skeleton"
        )
    return layout


class DatasetFile(abc.ABC):
    """A skeleton dataset on disk in one of the supported formats, validated when opened."""

    format: str
    path: Path
    num_classes: int
    layout: SkeletonLayout
    class_names: tuple[str, ...] | None = None
    planar: bool = False  # 2-D keypoints with a score as the third channel (PYSKL 2-D pickles)
    holds_benchmarks = False  # one file, several benchmarks' splits (PYSKL): `benchmark` chooses

    def __init__(
        self,
        path: str | os.PathLike[str],
        layout: SkeletonLayout | None = None,
        layout_source: str = "--layout",
        benchmark: str | None = None,
    ) -> None:
        """Open and validate the file at `path` (its big arrays are read later). `layout` is the
        skeleton expected, `layout_source` where it came from; `benchmark` chooses one of the
        benchmarks a file holds (None: its default)."""
        self.path = Path(path)
        if benchmark is not None and not self.holds_benchmarks:
            raise MksgnError(
                f"{path}: a benchmark ('{benchmark}') can only be chosen in a PYSKL pickle; this "
                f"file holds one benchmark ({FORMAT_DESCRIPTIONS[self.format]})"
            )
        self._open(layout, layout_source, benchmark)

    @abc.abstractmethod
    def _open(
        self, layout: SkeletonLayout | None, layout_source: str, benchmark: str | None
    ) -> None:
        """Read what the file holds besides its big arrays, refusing what it cannot load."""

    @property
    @abc.abstractmethod
    def splits(self) -> tuple[str, ...]:
        """The split names this file can load ('train', 'test' or, for PYSKL, its own names)."""

    @abc.abstractmethod
    def split_shape(self, split: str) -> tuple[int, int, int]:
        """(samples N, frames T, bodies M) of a split, without loading its data."""

    @abc.abstractmethod
    def load(self, split: str) -> SkeletonArrays:
        """One split as (N, 3, T, V, M) float32 data with 0-based labels and sample names."""

    @abc.abstractmethod
    def iter_chunks(self, split: str) -> Iterator[SkeletonArrays]:
        """The split in consecutive chunks of samples, with bounded memory (T may vary for PYSKL)."""

    def _unknown_split(self, split: str) -> MksgnError:
        """The error for a split this file does not have."""
        return MksgnError(
            f"{self.path}: has no split '{split}'; available: {', '.join(self.splits) or 'none'}"
        )
