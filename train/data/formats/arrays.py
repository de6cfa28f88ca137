"""Skeleton arrays in memory (SkeletonArrays), the CTR-GCN layout and its npz writer, and the
spool that streams a large npz to disk sample by sample."""

from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from mksgn.atomic import atomic_path, atomic_savez, temporary_directory, write_error
from mksgn.train.data.layout import NTU_25, SkeletonLayout

NUM_JOINTS = NTU_25.num_joints  # a file that records no layout and has 25 joints is NTU
MAX_BODIES = 2
COORDS = 3
# npz member holding the dataset's layout as one JSON string (CTR-GCN's loader ignores it).
LAYOUT_KEY = "layout"
SPLITS = ("train", "test")
# CtrgcnSpool copies its temporaries into the npz this many bytes at a time: with CHUNK_BYTES the
# copy buffer made `data prepare`'s peak grow with the split size up to 64 MiB (96 -> 172 MiB from
# 500 to 2,000 files), which looked like memory per file; the copy is as fast with 1 MiB.
SPOOL_COPY_BYTES = 1 << 20
SPOOL_LABEL_ROWS = 4096


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
