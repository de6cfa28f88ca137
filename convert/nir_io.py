"""Reading NIR files: nir.read in a watched child process (damaged HDF5 can loop or crash
libhdf5), with every failure turned into one error naming the file.

NIR 1.0.8's own type inference reads a grouped convolution's input channels from
`weight.shape[1]` (C_in / groups, not C_in), so every graph with `groups > 1` fails its type
check. mksgn therefore reads with `type_check=False` and checks shapes itself
(convert/nir_validation.py: `validate_graph`), counting grouped convolutions correctly.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import nir
import numpy as np

from mksgn.errors import MksgnError
from mksgn.isolation import ChildDied, ChildFailed, ChildTimedOut, call_in_child

# nir.read takes 2 s for a 241 MB graph (four 4096x4096 Affine); a minute means libhdf5 loops.
NIR_READ_TIMEOUT_S = 60.0


def read_nir(path: str | os.PathLike[str]) -> nir.NIRGraph:
    """Read a NIR HDF5 file, turning every failure into an MksgnError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MksgnError(f"NIR file {path} does not exist (write one with 'mksgn export')")
    limit = NIR_READ_TIMEOUT_S  # looked up per call: the fuzz harness lowers it
    damaged = "the file is truncated, corrupt or not written by nir.write"
    try:
        # In a child: damaged HDF5 can send libhdf5 into a loop that holds the GIL (a byte-flipped
        # file found by fuzzing) or crash it, and only another process can stop or survive that.
        graph = call_in_child(read_nir_here, path, timeout_s=limit)
    except ChildFailed as failure:
        if failure.kind == MksgnError.__name__:
            raise MksgnError(failure.message) from None
        first = (failure.message.strip().splitlines() or [failure.kind])[0]
        raise MksgnError(
            f"{path} could not be read as a NIR graph ({failure.kind}: {first}); {damaged}"
        ) from None
    except ChildTimedOut:
        raise MksgnError(
            f"reading {path} was stopped after {limit:g} s: the HDF5 library was stuck on its "
            f"data; {damaged}"
        ) from None
    except ChildDied as death:
        raise MksgnError(f"the HDF5 reader {death} while reading {path}; {damaged}") from None
    graph.metadata = plain_metadata(graph.metadata)
    if not graph.inputs or not graph.outputs:
        missing = "an Input" if not graph.inputs else "an Output"
        raise MksgnError(f"NIR graph {path} has no {missing} node; it cannot be run")
    return graph


def read_nir_here(path: Path) -> nir.NIRGraph:
    """Read a NIR file in this process, with no time limit (read_nir runs this in a child)."""
    if not h5py.is_hdf5(path):
        with open(path, "rb") as handle:
            zipped = handle.read(4) == b"PK\x03\x04"  # torch.save writes a zip archive
        if zipped:
            raise MksgnError(
                f"{path} is a PyTorch checkpoint, not a NIR graph: export it first with "
                f"'mksgn export {path} --nir MODEL.nir' ('mksgn energy' takes a checkpoint too)"
            )
        raise MksgnError(
            f"{path} is not an HDF5 file, so not a NIR graph (is it truncated or another format?)"
        )
    # NIR computes conv output shapes from the file's strides; a stride of 0 made numpy print
    # a divide-by-zero RuntimeWarning ahead of the Error line (the OverflowError follows).
    with np.errstate(all="ignore"):
        graph = nir.read(path, type_check=False)
    if not isinstance(graph, nir.NIRGraph):
        raise MksgnError(f"{path} holds a single {type(graph).__name__} node, not a NIR graph")
    return graph


def plain_metadata(metadata: object) -> dict:
    """Metadata as h5py returns it (bytes arrays for lists of strings) turned back into lists,
    strings and numbers."""
    if not isinstance(metadata, dict):
        return {}

    def plain(value: object) -> object:
        if isinstance(value, bytes):
            return value.decode("utf8")
        if isinstance(value, np.ndarray):
            if value.dtype.kind in "OSU":
                return [plain(item) for item in value.tolist()]
            return value.item() if value.ndim == 0 else value.tolist()
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        return value

    return {key: plain(value) for key, value in metadata.items()}
