"""Mutations of seed files, each a function of (bytes, integer choice) -> bytes: byte-level ones
(truncation, byte flips, inserted garbage) and structure-aware ones per format (absurd counts,
NaN/inf values, wrong dtypes, huge declared shapes, damaged pickles, archives and HDF5 graphs)."""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Callable

import numpy as np

from mksgn.benchmarks.support.fuzz.cases import NIR_CASE_READ_S
from mksgn.benchmarks.support.fuzz.encoding import (
    bundle,
    npy_bytes,
    npy_with_header,
    split_npy,
    unbundle,
)
from mksgn.isolation import ChildDied, ChildFailed, ChildTimedOut, call_in_child

ABSURD_COUNTS = (
    "1000000000000",
    "999999999999999999999999",
    "9223372036854775808",
    "-1",
    "0",
    "26",
    "1.5",
    "nan",
    "1e12",
    "",
    "0x19",
    "2_5",
)
ABSURD_NUMBERS = ("nan", "inf", "-inf", "1e309", "-1e309", "NaN", "3.4e38", "1e-320", "x", "--1")
ABSURD_DIMS = (10**12, 2**40, 2**31, 10**9, 0, 2**62)
ODD_DTYPES = ("<f2", ">f4", "<f8", "|O", "<U8", "|S4", "<i8", "|b1", "<c8", "|V8", "<M8[s]", "<i2")


# ------------------------------------------------------------------------ byte-level mutations


def truncate(data: bytes, choice: int) -> bytes:
    """Cut the file at a position chosen by `choice`."""
    return data[: choice % (len(data) + 1)]


def flip(data: bytes, choice: int) -> bytes:
    """Overwrite 1-8 bytes at positions and with values derived from `choice`."""
    if not data:
        return data
    rng = np.random.default_rng(choice)
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        out[int(rng.integers(len(out)))] = int(rng.integers(256))
    return bytes(out)


def insert_garbage(data: bytes, choice: int) -> bytes:
    """Insert up to 64 random bytes at a position derived from `choice`."""
    rng = np.random.default_rng(choice)
    at = int(rng.integers(len(data) + 1))
    return data[:at] + rng.bytes(int(rng.integers(1, 65))) + data[at:]


BYTE_MUTATIONS: dict[str, Callable[[bytes, int], bytes]] = {
    "truncate": truncate,
    "flip": flip,
    "insert": insert_garbage,
}


# --------------------------------------------------------------------------- .skeleton


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _replace_token(data: bytes, choice: int, pick: Callable[[list[bytes]], list[int]], values):
    """Replace one whitespace token on a line chosen among `pick(lines)` by one of `values`."""
    lines = _lines(data)
    candidates = pick(lines)
    if not candidates:
        return data
    rng = np.random.default_rng(choice)
    index = candidates[int(rng.integers(len(candidates)))]
    tokens = lines[index].split(b" ")
    at = int(rng.integers(len(tokens)))
    tokens[at] = values[int(rng.integers(len(values)))].encode()
    lines[index] = b" ".join(tokens)
    return b"\n".join(lines)


def absurd_count(data: bytes, choice: int) -> bytes:
    """A frame, body or joint count (a line holding one integer) becomes absurd."""
    return _replace_token(
        data,
        choice,
        lambda lines: [i for i, line in enumerate(lines) if len(line.split()) == 1],
        ABSURD_COUNTS,
    )


def absurd_coordinate(data: bytes, choice: int) -> bytes:
    """A joint value (NaN, inf, overflow, not a number) in a 12-value joint line."""
    return _replace_token(
        data,
        choice,
        lambda lines: [i for i, line in enumerate(lines) if len(line.split()) == 12],
        ABSURD_NUMBERS,
    )


def absurd_body_id(data: bytes, choice: int) -> bytes:
    """A body info line with an odd bodyID (beyond int64, negative, not an integer)."""
    values = ("99999999999999999999999999", "-5", "1.5", "nan", "0", "18446744073709551616")
    lines = _lines(data)
    infos = [i for i, line in enumerate(lines) if len(line.split()) == 10]
    if not infos:
        return data
    rng = np.random.default_rng(choice)
    index = infos[int(rng.integers(len(infos)))]
    tokens = lines[index].split(b" ")
    tokens[0] = values[int(rng.integers(len(values)))].encode()
    lines[index] = b" ".join(tokens)
    return b"\n".join(lines)


def line_edit(data: bytes, choice: int) -> bytes:
    """Drop, duplicate or swap lines, or use Windows line endings."""
    lines = _lines(data)
    rng = np.random.default_rng(choice)
    kind = int(rng.integers(4))
    at = int(rng.integers(len(lines)))
    if kind == 0:
        del lines[at]
    elif kind == 1:
        lines.insert(at, lines[at])
    elif kind == 2:
        other = int(rng.integers(len(lines)))
        lines[at], lines[other] = lines[other], lines[at]
    else:
        return data.replace(b"\n", b"\r\n")
    return b"\n".join(lines)


# ------------------------------------------------------------------------------ npy / npz


def mutate_npy_header(data: bytes, choice: int) -> bytes:
    """Declare a huge, zero or extra dimension, another dtype, or Fortran order."""
    parts = split_npy(data)
    if parts is None:
        return data
    header, payload = parts
    rng = np.random.default_rng(choice)
    shape = list(header["shape"])
    kind = int(rng.integers(5))
    descr, fortran = header["descr"], header["fortran_order"]
    if kind == 0 and shape:
        shape[int(rng.integers(len(shape)))] = ABSURD_DIMS[int(rng.integers(len(ABSURD_DIMS)))]
    elif kind == 1:
        shape.insert(int(rng.integers(len(shape) + 1)), int(rng.integers(1, 4)))
    elif kind == 2 and shape:
        del shape[int(rng.integers(len(shape)))]
    elif kind == 3:
        descr = ODD_DTYPES[int(rng.integers(len(ODD_DTYPES)))]
    else:
        fortran = not fortran
    try:
        return npy_with_header(descr, tuple(shape), fortran, payload)
    except Exception:  # a header numpy itself refuses to write
        return data


def poison_npy_values(data: bytes, choice: int) -> bytes:
    """Float data: some values NaN/inf/huge; integer data: negative or huge values."""
    parts = split_npy(data)
    if parts is None:
        return data
    header, payload = parts
    dtype = np.dtype(header["descr"])
    if dtype.kind not in "fiu" or dtype.itemsize == 0 or len(payload) < dtype.itemsize:
        return data
    values = np.frombuffer(payload[: len(payload) // dtype.itemsize * dtype.itemsize], dtype)
    values = values.copy()
    rng = np.random.default_rng(choice)
    at = rng.integers(len(values), size=int(rng.integers(1, 4)))
    if dtype.kind == "f":
        values[at] = rng.choice([np.nan, np.inf, -np.inf, np.finfo(dtype).max])
    else:
        values[at] = rng.choice([-1, np.iinfo(dtype).max, np.iinfo(dtype).min])
    return npy_with_header(header["descr"], header["shape"], header["fortran_order"], b"") + (
        values.tobytes() + payload[len(values) * dtype.itemsize :]
    )


def _zip_members(data: bytes) -> dict[str, bytes] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {info.filename: archive.read(info) for info in archive.infolist()}
    except Exception:
        return None


def _zip(members: dict[str, bytes], compressed: bool) -> bytes:
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def npz_member_mutation(inner: Callable[[bytes, int], bytes]) -> Callable[[bytes, int], bytes]:
    """Apply an .npy mutation to one member of an npz archive (rebuilt, maybe compressed)."""

    def mutation(data: bytes, choice: int) -> bytes:
        members = _zip_members(data)
        if not members:
            return data
        names = sorted(members)
        rng = np.random.default_rng(choice)
        name = names[int(rng.integers(len(names)))]
        members[name] = inner(members[name], int(rng.integers(2**31)))
        return _zip(members, compressed=bool(rng.integers(2)))

    return mutation


def npz_keys(data: bytes, choice: int) -> bytes:
    """Drop, rename or duplicate a key, or swap y for a label vector with absurd labels."""
    members = _zip_members(data)
    if not members:
        return data
    rng = np.random.default_rng(choice)
    names = sorted(members)
    name = names[int(rng.integers(len(names)))]
    kind = int(rng.integers(4))
    if kind == 0:
        del members[name]
    elif kind == 1:
        members["renamed_" + name] = members.pop(name)
    elif kind == 2:
        other = names[int(rng.integers(len(names)))]
        members[name] = members[other]
    else:
        split = ("train", "test")[int(rng.integers(2))]
        header = split_npy(members.get(f"x_{split}.npy", b""))
        n = header[0]["shape"][0] if header and header[0]["shape"] else 2
        labels = rng.choice([0, 1, -1, 10**12, 2**62, 10**9], size=n).astype(np.int64)
        members[f"y_{split}.npy"] = npy_bytes(labels)
        members.pop("class_names.npy", None)
    return _zip(members, compressed=bool(rng.integers(2)))


# ------------------------------------------------------------------- ST-GCN npy + label pkl


def stgcn_file_mutation(inner: Callable[[bytes, int], bytes], suffix: str):
    """Apply a mutation to one file of the bundle whose name ends with `suffix`."""

    def mutation(data: bytes, choice: int) -> bytes:
        files = unbundle(data)
        names = sorted(name for name in files if name.endswith(suffix))
        if not names:
            return data
        rng = np.random.default_rng(choice)
        name = names[int(rng.integers(len(names)))]
        files[name] = inner(files[name], int(rng.integers(2**31)))
        return bundle(files)

    return mutation


ODD_LABEL_CONTENTS = (
    lambda names, labels: (names, [10**30 for _ in labels]),
    lambda names, labels: (names, [-1 for _ in labels]),
    lambda names, labels: (names, [float(v) for v in labels]),
    lambda names, labels: (names, [True for _ in labels]),
    lambda names, labels: (names, np.array(labels, dtype=np.float32)),
    lambda names, labels: (names, np.array(labels, dtype=np.uint64) + 2**63),
    lambda names, labels: (names, [10**12 for _ in labels]),
    lambda names, labels: ([1 for _ in names], labels),
    lambda names, labels: (names, labels[:-1]),
    lambda names, labels: (names,),
    lambda names, labels: {"names": names},
    lambda names, labels: (names, np.array(labels).reshape(1, -1)),
    lambda names, labels: (names, [[v] for v in labels]),
    lambda names, labels: (names, np.array(labels, dtype=np.int64).astype("<U3")),
)


def label_content(data: bytes, choice: int) -> bytes:
    """Rewrite a label pickle with odd content (huge/negative/float labels, wrong structure)."""
    try:
        names, labels = pickle.loads(data)  # our own seed's pickle
    except Exception:
        return data
    rng = np.random.default_rng(choice)
    content = ODD_LABEL_CONTENTS[int(rng.integers(len(ODD_LABEL_CONTENTS)))](names, labels)
    return pickle.dumps(content, protocol=int(rng.integers(2, 5)))


def drop_file(data: bytes, choice: int) -> bytes:
    """Remove one file of the bundle."""
    files = unbundle(data)
    names = sorted(files)
    del files[names[choice % len(names)]]
    return bundle(files)


# ---------------------------------------------------------------------------- PYSKL pickle


ODD_ANNOTATION_CHANGES = (
    ("label", 10**30),
    ("label", 10**12),
    ("label", -3),
    ("label", 1.0),
    ("label", None),
    ("total_frames", 10**12),
    ("total_frames", "5"),
    ("frame_dir", 7),
    ("keypoint", np.zeros((2, 3, 25, 2), np.float32)),
    ("keypoint", np.zeros((3, 3, 25, 3), np.float32)),
    ("keypoint", np.zeros((1, 0, 25, 3), np.float32)),
    ("keypoint", np.full((1, 2, 25, 3), np.nan, np.float32)),
    ("keypoint", np.full((1, 2, 25, 3), np.inf, np.float16)),
    ("keypoint", np.zeros((1, 2, 25, 3), np.int64)),
    ("keypoint", [[0.0]]),
    ("keypoint", np.zeros((1, 2, 25, 3), np.complex64)),
)


def pyskl_structure(data: bytes, choice: int) -> bytes:
    """Change one annotation field, or the split table, to something odd."""
    try:
        content = pickle.loads(data)  # our own seed's pickle
    except Exception:
        return data
    rng = np.random.default_rng(choice)
    kind = int(rng.integers(3))
    annotations = content["annotations"]
    if kind == 0:
        key, value = ODD_ANNOTATION_CHANGES[int(rng.integers(len(ODD_ANNOTATION_CHANGES)))]
        annotations[int(rng.integers(len(annotations)))][key] = value
    elif kind == 1:
        odd = ({"xsub_train": ["nobody"]}, {"xsub_train": "abc"}, {1: []}, [], {"a_train": []})
        content["split"] = odd[int(rng.integers(len(odd)))]
    else:
        odd = (None, {}, [None], [{}], annotations * 2, "annotations")
        content["annotations"] = odd[int(rng.integers(len(odd)))]
    return pickle.dumps(content, protocol=int(rng.integers(2, 6)))


# ------------------------------------------------------------------------------ NIR graphs


def _edit_hdf5(data: bytes, edit: Callable[[object, np.random.Generator], None], choice: int):
    """Open the HDF5 bytes, apply `edit(file, rng)`, return the new bytes (or the old ones)."""
    import h5py

    def edited() -> bytes:
        buffer = io.BytesIO(data)
        with h5py.File(buffer, "r+") as handle:
            edit(handle, np.random.default_rng(choice))
        return buffer.getvalue()

    # In a child, as read_nir reads: libhdf5 can loop forever, holding the GIL, on a file an
    # earlier byte flip damaged.
    try:
        return call_in_child(edited, timeout_s=NIR_CASE_READ_S)
    except (ChildFailed, ChildTimedOut, ChildDied):
        return data


def _datasets(handle) -> list[str]:
    import h5py

    found: list[str] = []
    handle.visititems(
        lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None
    )
    return found


def _replace(handle, name: str, value: object) -> None:
    del handle[name]
    handle[name] = value


ODD_NIR_VALUES = (
    lambda v: np.full(np.shape(v), 10**12) if np.ndim(v) else 10**12,
    lambda v: np.full(np.shape(v), -1) if np.ndim(v) else -1,
    lambda v: np.zeros(np.shape(v)) if np.ndim(v) else 0,
    lambda v: np.full(np.shape(v), np.nan) if np.ndim(v) else np.nan,
    lambda v: np.full(np.shape(v), np.inf) if np.ndim(v) else -np.inf,
    lambda v: np.zeros((0,)),
    lambda v: np.zeros((2, 2, 2, 2, 2)),
    lambda v: np.float64(1.5),
    lambda v: "LIF",
    lambda v: np.array([b"a", b"b"], dtype=object),
    lambda v: np.array([2**40, 3]),
    lambda v: np.array([10**9]),
    lambda v: np.ones((*np.shape(v), 1)) if np.ndim(v) else np.ones(2),
    lambda v: np.array([1 + 2j]),
    lambda v: True,
)
NEURON_PARAMETERS = ("tau", "r", "v_leak", "v_threshold", "v_reset", "tau_syn", "tau_mem", "w_in")
NODE_TYPE_NAMES = ("LIF", "Conv2d", "NIRGraph", "Input", "Output", "Bogus", "", "Affine", "Delay")


def nir_value(data: bytes, choice: int) -> bytes:
    """One dataset (a parameter, shape, edge list or type string) replaced by an odd value."""

    def edit(handle, rng: np.random.Generator) -> None:
        names = _datasets(handle)
        name = names[int(rng.integers(len(names)))]
        if name.endswith("/type") or name == "node/type":
            _replace(handle, name, NODE_TYPE_NAMES[int(rng.integers(len(NODE_TYPE_NAMES)))])
            return
        odd = ODD_NIR_VALUES[int(rng.integers(len(ODD_NIR_VALUES)))]
        group, leaf = name.rsplit("/", 1)
        # NIR requires a neuron's parameters to share one shape: change them together.
        together = (
            [k for k in handle[group] if k in NEURON_PARAMETERS]
            if leaf in NEURON_PARAMETERS
            else []
        )
        for key in together or [leaf]:
            _replace(handle, f"{group}/{key}", odd(handle[f"{group}/{key}"][()]))

    return _edit_hdf5(data, edit, choice)


def nir_huge_shape(data: bytes, choice: int) -> bytes:
    """Declare a huge Input/Output shape and make every neuron parameter broadcastable."""

    def edit(handle, rng: np.random.Generator) -> None:
        huge = ABSURD_DIMS[int(rng.integers(len(ABSURD_DIMS)))] or 10**7
        shrink = {}  # neuron group -> shrink its parameters to one broadcast value
        for name in _datasets(handle):
            group, leaf = name.rsplit("/", 1)
            if leaf in ("shape", "input_shape"):
                value = np.atleast_1d(handle[name][()]).astype(np.int64)
                value[int(rng.integers(len(value)))] = huge
                _replace(handle, name, value)
            elif leaf in NEURON_PARAMETERS and shrink.setdefault(group, bool(rng.integers(2))):
                _replace(handle, name, np.atleast_1d(handle[name][()]).ravel()[:1])

    return _edit_hdf5(data, edit, choice)


def nir_edges(data: bytes, choice: int) -> bytes:
    """Edges to missing nodes, self loops, cycles, none, or a node deleted."""

    def edit(handle, rng: np.random.Generator) -> None:
        edges = [tuple(e) for e in handle["node/edges"][()].astype(str).tolist()]
        nodes = list(handle["node/nodes"])
        kind = int(rng.integers(5))
        if kind == 0:
            edges.append(("input", "nowhere"))
        elif kind == 1:
            name = nodes[int(rng.integers(len(nodes)))]
            edges.append((name, name))
        elif kind == 2:
            edges = [(t, s) for s, t in edges]
        elif kind == 3:
            edges = edges[: int(rng.integers(len(edges)))]
        else:
            del handle[f"node/nodes/{nodes[int(rng.integers(len(nodes)))]}"]
            return
        _replace(handle, "node/edges", np.array(edges or [("", "")], dtype=object))

    return _edit_hdf5(data, edit, choice)


def nir_delete(data: bytes, choice: int) -> bytes:
    """Delete one dataset (a required parameter disappears)."""

    def edit(handle, rng: np.random.Generator) -> None:
        names = _datasets(handle)
        del handle[names[int(rng.integers(len(names)))]]

    return _edit_hdf5(data, edit, choice)


# ------------------------------------------------------------------------------ checkpoints


ABSURD_PICKLE_INTS = (0, 1, -1, 3, 2**31 - 1, -(2**31), 2**40, 10**12, 2**62, 2**64)
PICKLE_INT_OPCODES = ("BININT", "BININT1", "BININT2", "LONG1", "INT")


def _pickle_record(members: dict[str, bytes]) -> str | None:
    return next((name for name in members if name.endswith("data.pkl")), None)


def checkpoint_record_mutation(inner: Callable[[bytes, int], bytes], pickle_only: bool):
    """Apply `inner` to the pickle of a checkpoint's archive, or to any record of it."""

    def mutation(data: bytes, choice: int) -> bytes:
        members = _zip_members(data)
        if not members:
            return data
        rng = np.random.default_rng(choice)
        names = [_pickle_record(members)] if pickle_only else sorted(members)
        name = names[int(rng.integers(len(names)))]
        if name is None:
            return data
        members[name] = inner(members[name], int(rng.integers(2**31)))
        return _zip(members, compressed=False)

    return mutation


def pickle_int(data: bytes, choice: int) -> bytes:
    """Replace one integer in a pickle (a storage's element count, a size, a stride, an offset,
    an epoch) by an absurd one."""
    import pickletools

    ints = []
    ops = list(pickletools.genops(data))
    for index, (opcode, _arg, position) in enumerate(ops):
        if opcode.name in PICKLE_INT_OPCODES and index + 1 < len(ops):
            ints.append((position, ops[index + 1][2]))
    if not ints:
        return data
    rng = np.random.default_rng(choice)
    start, end = ints[int(rng.integers(len(ints)))]
    value = ABSURD_PICKLE_INTS[int(rng.integers(len(ABSURD_PICKLE_INTS)))]
    if -(2**31) <= value < 2**31:
        encoded = b"J" + value.to_bytes(4, "little", signed=True)
    else:
        raw = pickle.encode_long(value)
        encoded = b"\x8a" + bytes([len(raw)]) + raw
    return data[:start] + encoded + data[end:]


def drop_record(data: bytes, choice: int) -> bytes:
    """Remove one record (a tensor's data, the pickle, the version) from the archive."""
    members = _zip_members(data)
    if not members:
        return data
    names = sorted(members)
    del members[names[choice % len(names)]]
    return _zip(members, compressed=False)
