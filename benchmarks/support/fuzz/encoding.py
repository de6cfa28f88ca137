"""Bytes of the containers the seeds and mutations build: .npy files with any header, and the
bundle that holds an ST-GCN dataset folder as one case."""

from __future__ import annotations

import io
import pickle

import numpy as np


def npy_bytes(array: np.ndarray) -> bytes:
    """An array as .npy file bytes."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_with_header(descr: str, shape: tuple[int, ...], fortran: bool, payload: bytes) -> bytes:
    """.npy bytes whose header declares `descr` and `shape` and whose data is `payload`."""
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": fortran, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + payload


def split_npy(data: bytes) -> tuple[dict, bytes] | None:
    """(header dict, payload) of .npy bytes, or None when the header does not parse."""
    try:
        handle = io.BytesIO(data)
        version = np.lib.format.read_magic(handle)
        reader = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = reader(handle)
    except Exception:
        return None
    return {"descr": dtype.str, "shape": shape, "fortran_order": fortran}, data[handle.tell() :]


# An ST-GCN case is one "bundle": the pickled dict {file name: bytes} of a dataset folder.


def bundle(files: dict[str, bytes]) -> bytes:
    """The files of a dataset folder as one case's bytes."""
    return pickle.dumps(files)


def unbundle(data: bytes) -> dict[str, bytes]:
    """The files of a bundle (written by `bundle`)."""
    return pickle.loads(data)  # our own bundle, never a file from outside
