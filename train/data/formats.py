"""Skeleton arrays in memory, the CTR-GCN npz writer, and readers for the formats users already have."""

from __future__ import annotations

import abc
import math
import os
import re
import shutil
import tokenize
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from mksgn.atomic import atomic_path, atomic_savez, temporary_directory, write_error
from mksgn.errors import MksgnError
from mksgn.train.data.layout import BUILTIN_LAYOUTS, COCO_17, NTU_25, SkeletonLayout
from mksgn.train.data.safe_pickle import load_pickle

NUM_JOINTS = NTU_25.num_joints  # a file that records no layout and has 25 joints is NTU
MAX_BODIES = 2
COORDS = 3
# npz member holding the dataset's layout as one JSON string (CTR-GCN's loader ignores it).
LAYOUT_KEY = "layout"


@dataclass(frozen=True)
class SkeletonArrays:
    """One split of a skeleton dataset: data (N, 3, T, V, M) float32, 0-based labels (N,), names."""

    data: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.data.ndim != 5 or self.data.shape[1] != COORDS:
            raise ValueError(f"data must be (N, 3, T, V, M), got {self.data.shape}")
        if self.labels.shape != (self.data.shape[0],):
            raise ValueError(f"labels must be ({self.data.shape[0]},), got {self.labels.shape}")
        if self.names is not None and len(self.names) != self.data.shape[0]:
            raise ValueError(f"{len(self.names)} names for {self.data.shape[0]} samples")

    def __len__(self) -> int:
        return int(self.data.shape[0])


def to_ctrgcn_layout(data: np.ndarray, bodies: int = MAX_BODIES) -> np.ndarray:
    """(N, 3, T, V, M) -> CTR-GCN's (N, T, bodies*V*3) with bodies padded to `bodies`."""
    n, c, t, v, m = data.shape
    out = np.zeros((n, t, bodies, v, c), dtype=np.float32)
    # One copy straight into the output layout: prepared NTU splits are several GB.
    out[:, :, :m] = data.transpose(0, 2, 4, 3, 1)
    return out.reshape(n, t, bodies * v * c)


def from_ctrgcn_layout(
    x: np.ndarray, joints: int = NUM_JOINTS, bodies: int = MAX_BODIES
) -> np.ndarray:
    """CTR-GCN's (N, T, bodies*V*3) -> (N, 3, T, V, bodies)."""
    n, t, _ = x.shape
    return np.ascontiguousarray(
        x.reshape(n, t, bodies, joints, COORDS).transpose(0, 4, 1, 3, 2)
    ).astype(np.float32, copy=False)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """0-based labels -> float32 one-hot rows, as CTR-GCN stores y_train/y_test."""
    out = np.zeros((len(labels), num_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


def write_ctrgcn_npz(
    path: str | os.PathLike[str],
    train: SkeletonArrays,
    test: SkeletonArrays,
    num_classes: int,
    class_names: tuple[str, ...] | None = None,
    compressed: bool = True,
    layout: SkeletonLayout | None = None,
    bodies: int = MAX_BODIES,
) -> None:
    """Write a CTR-GCN-compatible npz (x_train/y_train/x_test/y_test), atomically.

    Sample names, class names and the layout (when given) go in extra keys that CTR-GCN's loader
    ignores; `bodies` is the number of body slots per frame (CTR-GCN's NTU files have 2).
    """
    arrays: dict[str, np.ndarray] = {}
    if layout is not None:
        arrays[LAYOUT_KEY] = np.array(layout.to_json(), dtype=np.str_)
    for split, part in (("train", train), ("test", test)):
        arrays[f"x_{split}"] = to_ctrgcn_layout(part.data, bodies)
        arrays[f"y_{split}"] = one_hot(part.labels, num_classes)
        if part.names is not None:
            arrays[f"names_{split}"] = np.array(part.names, dtype=np.str_)
    if class_names is not None:
        arrays["class_names"] = np.array(class_names, dtype=np.str_)
    atomic_savez(path, compressed=compressed, **arrays)


class CtrgcnSpool:
    """A CTR-GCN npz built one sample at a time: samples go to raw temporary files beside the
    output (one per split) and are copied into the npz at the end, so memory stays flat however
    many samples there are (NTU's 56,880 would need 20 GB held at once; disk holds them twice
    until the npz is written). Use as a context manager; the temporaries always go."""

    def __init__(
        self,
        out: str | os.PathLike[str],
        frames: int,
        layout: SkeletonLayout = NTU_25,
        bodies: int = MAX_BODIES,
    ) -> None:
        self.out = Path(out)
        self.frames = frames
        self.layout = layout
        self.bodies = bodies
        self.labels: dict[str, list[int]] = {split: [] for split in SPLITS}
        self.names: dict[str, list[str]] = {split: [] for split in SPLITS}
        self._folder: Path | None = None
        self._files: dict[str, IO[bytes]] = {}

    def __enter__(self) -> CtrgcnSpool:
        try:
            self._folder = temporary_directory(self.out)
            self._files = {s: open(self._folder / f"x_{s}.raw", "wb") for s in SPLITS}  # noqa: SIM115
        except OSError as error:
            self.__exit__()
            raise write_error(self.out, error) from None
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._files.values():
            handle.close()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    def add(self, split: str, name: str, label: int, joints: np.ndarray) -> None:
        """Append one sample, joints (T', M <= bodies, V, 3): cut or zero-padded to `frames`."""
        row = np.zeros((self.frames, self.bodies, self.layout.num_joints, COORDS), dtype="<f4")
        length = min(len(joints), self.frames)
        row[:length, : joints.shape[1]] = joints[:length]
        try:
            self._files[split].write(row.tobytes())
        except OSError as error:  # the disk filled up while parsing
            raise write_error(self.out, error) from None
        self.labels[split].append(int(label))
        self.names[split].append(name)

    def write(self, num_classes: int) -> None:
        """Write the npz (uncompressed, as write_ctrgcn_npz would) atomically."""
        width = self.bodies * self.layout.num_joints * COORDS
        with (
            atomic_path(self.out, suffix=".npz") as tmp,
            zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf,
        ):
            with zf.open(f"{LAYOUT_KEY}.npy", "w") as member:
                layout = np.array(self.layout.to_json(), dtype=np.str_)
                np.lib.format.write_array(member, layout, allow_pickle=False)
            for split in SPLITS:
                self._files[split].close()  # flushes; an OSError here is the atomic write's
                count = len(self.labels[split])
                header = {
                    "descr": "<f4",
                    "fortran_order": False,
                    "shape": (count, self.frames, width),
                }
                with zf.open(f"x_{split}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array_header_1_0(member, header)
                    with open(self._folder / f"x_{split}.raw", "rb") as raw:
                        shutil.copyfileobj(raw, member, SPOOL_COPY_BYTES)
                labels = np.asarray(self.labels[split], dtype=np.int64)
                header = {"descr": "<f4", "fortran_order": False, "shape": (count, num_classes)}
                with zf.open(f"y_{split}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array_header_1_0(member, header)
                    # In rows of SPOOL_LABEL_ROWS: NTU120's 63,026 one-hot rows at once are 30 MB.
                    for start in range(0, count, SPOOL_LABEL_ROWS):
                        rows = one_hot(labels[start : start + SPOOL_LABEL_ROWS], num_classes)
                        member.write(rows.astype("<f4", copy=False).tobytes())
                with zf.open(f"names_{split}.npy", "w", force_zip64=True) as member:
                    names = np.array(self.names[split], dtype=np.str_)
                    np.lib.format.write_array(member, names, allow_pickle=False)


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
SPLITS = ("train", "test")
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
# CtrgcnSpool copies its temporaries into the npz this many bytes at a time: with CHUNK_BYTES the
# copy buffer made `data prepare`'s peak grow with the split size up to 64 MiB (96 -> 172 MiB from
# 500 to 2,000 files), which looked like memory per file; the copy is as fast with 1 MiB.
SPOOL_COPY_BYTES = 1 << 20
SPOOL_LABEL_ROWS = 4096
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


# ---------------------------------------------------------------------------- CTR-GCN npz


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

    def __init__(
        self,
        path: str | os.PathLike[str],
        layout: SkeletonLayout | None = None,
        layout_source: str = "--layout",
    ) -> None:
        self.path = Path(path)
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
        rows_per_chunk = max(1, CHUNK_BYTES // max(row_bytes, 1))
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


# ------------------------------------------------------------------------ ST-GCN / 2s-AGCN


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

    def __init__(
        self,
        path: str | os.PathLike[str],
        layout: SkeletonLayout | None = None,
        layout_source: str = "--layout",
    ) -> None:
        self.path = Path(path)
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
        step = max(1, CHUNK_BYTES // max(sample_bytes, 1))
        for start in range(0, data.shape[0], step):
            stop = start + step
            yield SkeletonArrays(
                np.asarray(data[start:stop], dtype=np.float32),
                labels[start:stop],
                names[start:stop],
            )


# ------------------------------------------------------------------------------------ PYSKL


@dataclass(frozen=True)
class _PysklSample:
    """One validated PYSKL annotation."""

    label: int
    keypoint: np.ndarray  # (M, T, V, 3): x, y, z or x, y, score


class PysklPickle(DatasetFile):
    """PYSKL pickle: dict(split={'xsub_train': [names], ...}, annotations=[dict(frame_dir, ...)])."""

    format = PYSKL_PKL

    def __init__(
        self,
        path: str | os.PathLike[str],
        benchmark: str | None = None,
        layout: SkeletonLayout | None = None,
        layout_source: str = "--layout",
    ) -> None:
        self.path = Path(path)
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
        step = max(1, CHUNK_BYTES // (max(frames, 1) * per_frame))
        for start in range(0, len(names), step):
            yield self._arrays(names[start : start + step], key)


# ----------------------------------------------------------------------- one entry point


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
    fmt = detect_format(path)
    if fmt == PYSKL_PKL:
        return PysklPickle(path, benchmark, layout, layout_source)
    if benchmark is not None:
        raise MksgnError(
            f"{path}: a benchmark ('{benchmark}') can only be chosen in a PYSKL pickle; this file "
            f"holds one benchmark ({FORMAT_DESCRIPTIONS[fmt]})"
        )
    reader = CtrgcnNpz if fmt == CTRGCN_NPZ else StgcnNpy
    return reader(path, layout, layout_source)


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
