"""Mutation fuzzing of every reader of untrusted files (used by tests/test_fuzz_parsers.py and
benchmarks/reliability.py).

A fuzz *target* writes valid seed files, mutates a seed (byte-level: truncation, byte flips,
inserted garbage; structure-aware: absurd counts, NaN/inf values, wrong dtypes, huge declared
shapes) and parses the result the way a command would. `run_case` classifies how a parse ended:
"ok", "error" (MksgnError, the CLI's one `Error:` line) or a defect: "crash" (any other exception),
"hang" (over the time limit) or "memory" (a parse that allocated more than MEMORY_LIMIT_BYTES:
memory sized by a number read from the file). Mutations are functions of (seed bytes, integer
choices), so hypothesis can draw and shrink the choices and a seeded RNG can drive long runs.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import shutil
import signal
import sys
import time
import tracemalloc
import unittest.mock
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mksgn.benchmarks.support.process_probes import memory_status, reset_resident_peak
from mksgn.errors import MksgnError
from mksgn.isolation import (
    ChildDied,
    ChildFailed,
    ChildTimedOut,
    call_in_child,
    take_children_traced_peak,
)

# Seeds are a few kB; an honest parse of a mutated seed stays far below this.
MEMORY_LIMIT_BYTES = 64 << 20
CASE_TIMEOUT_S = 20.0
# A seed-sized HDF5 file reads in milliseconds: past this, libhdf5 is looping on damaged data. It
# bounds NIR reads (which `mksgn convert` stops after NIR_READ_TIMEOUT_S) below CASE_TIMEOUT_S,
# so such a case counts as the Error that convert prints rather than as a hang.
NIR_CASE_READ_S = 5.0
OK, ERROR = "ok", "error"
DEFECTS = ("crash", "hang", "memory", "warning")  # a warning prints ahead of the Error line

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


class Hang(Exception):
    """Raised by the case timer inside a parse that runs too long."""


@dataclass
class Tally:
    """How the cases of one target ended."""

    cases: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    defects: list[str] = field(default_factory=list)  # "mutation: outcome: detail", first few
    peak_bytes: int = 0

    def add(self, mutation: str, outcome: Outcome) -> None:
        """Count one case."""
        self.cases += 1
        self.outcomes[outcome.kind] = self.outcomes.get(outcome.kind, 0) + 1
        self.peak_bytes = max(self.peak_bytes, outcome.peak_bytes)
        if outcome.kind in DEFECTS and len(self.defects) < 20:
            self.defects.append(f"{mutation}: {outcome.kind}: {outcome.detail}")


@dataclass(frozen=True)
class Outcome:
    """How one parse ended, and the most memory it held at once."""

    kind: str
    detail: str = ""
    peak_bytes: int = 0


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise Hang in the main thread after `seconds`; an outer SIGALRM timer (pytest-timeout)
    is suspended meanwhile and re-armed with what is left of it."""
    started = time.monotonic()

    def expire(_signum: int, _frame: object) -> None:
        raise Hang(f"still running after {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:
            left = outer - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))


def run_case(parse: Callable[[Path], object], path: Path, timeout_s: float = CASE_TIMEOUT_S):
    """Parse `path` under a time limit and tracemalloc; return its Outcome."""
    tracemalloc.start()
    take_children_traced_peak()
    # tracemalloc sees Python's and numpy's allocations, not torch's or a C library's: the
    # growth of the resident peak covers those (0-4 MiB for every honest case measured).
    resident_before = memory_status("VmRSS") if reset_resident_peak() else None
    try:
        with time_limit(timeout_s), warnings.catch_warnings(record=True) as printed:
            warnings.simplefilter("always")
            # What Python hides by default outside __main__ never reaches the user.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            parse(path)
        kind, detail = OK, ""
    except MksgnError as error:
        kind, detail = ERROR, str(error)
        if "\n" in detail:  # the CLI prints one line
            kind, detail = "crash", f"multi-line error: {detail!r}"
    except Hang as error:
        kind, detail = "hang", str(error)
    except BaseException as error:  # the defect being looked for: anything but MksgnError
        if isinstance(error, KeyboardInterrupt):
            raise
        kind, detail = "crash", f"{type(error).__name__}: {error}"[:300]
    finally:
        # A NIR read runs in a child (isolation.call_in_child): count what it allocated too.
        peak = max(tracemalloc.get_traced_memory()[1], take_children_traced_peak())
        if resident_before is not None:
            peak = max(peak, memory_status("VmHWM") - resident_before)
        tracemalloc.stop()
    if kind in (OK, ERROR) and printed:
        kind, detail = "warning", f"{printed[0].category.__name__}: {printed[0].message}"[:300]
    if peak > MEMORY_LIMIT_BYTES and kind != "crash":
        kind, detail = "memory", f"{peak / 2**20:.0f} MiB ({kind}: {detail[:200]})"
    return Outcome(kind, detail, peak)


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


# ------------------------------------------------------------------------------- targets


@dataclass
class Target:
    """A reader of one file format: seeds, mutations and the parse a command performs."""

    name: str
    suffix: str
    make_seeds: Callable[[Path], list[bytes]]
    mutations: dict[str, Callable[[bytes, int], bytes]]
    parse: Callable[[Path], object]
    # How a mutated file is placed for parsing (a folder for ST-GCN); returns the path to parse.
    place: Callable[[Path, bytes], Path] | None = None
    # Weight of byte-level mutations against structure-aware ones (weight 2).
    byte_weight: float = 1.0

    def write_case(self, folder: Path, data: bytes) -> Path:
        """Write the mutated bytes where the parse expects them; return what to parse."""
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        if self.place is not None:
            return self.place(folder, data)
        path = folder / f"case{self.suffix}"
        path.write_bytes(data)
        return path


def mutate(target: Target, seed: bytes, steps: Sequence[tuple[str, int]]) -> bytes:
    """Apply the named mutations in order."""
    data = seed
    for name, choice in steps:
        # A structure-aware mutation may not apply to what an earlier one produced: skip it.
        with contextlib.suppress(Exception):
            data = target.mutations[name](data, choice)
    return data


def random_steps(target: Target, rng: np.random.Generator) -> list[tuple[str, int]]:
    """1-3 mutations chosen at random (structure-aware ones more often than byte-level)."""
    names = list(target.mutations)
    weights = np.array([target.byte_weight if n in BYTE_MUTATIONS else 2.0 for n in names])
    picks = rng.choice(len(names), size=int(rng.integers(1, 4)), p=weights / weights.sum())
    return [(names[i], int(rng.integers(2**31))) for i in picks]


def fuzz(target: Target, cases: int, work: Path, seed: int = 0, tally: Tally | None = None):
    """Run `cases` random mutations of the target's seeds; return the Tally."""
    tally = tally or Tally()
    rng = np.random.default_rng(seed)
    seeds = target.make_seeds(work / "seeds")
    for _ in range(cases):
        steps = random_steps(target, rng)
        data = mutate(target, seeds[int(rng.integers(len(seeds)))], steps)
        path = target.write_case(work / "case", data)
        tally.add("+".join(name for name, _ in steps), run_case(target.parse, path))
    return tally


# --------------------------------------------------------------------------- .skeleton


def skeleton_seeds(folder: Path) -> list[bytes]:
    """Small valid .skeleton files: 1-2 bodies, a frame without a body, a body that leaves."""
    from mksgn.train.data.skeleton_file import write_skeleton_file

    folder.mkdir(parents=True, exist_ok=True)
    seeds = []
    for index, (frames, bodies) in enumerate(((3, 1), (5, 2), (14, 2))):
        rng = np.random.default_rng(index)
        joints = rng.normal(0.0, 0.5, (frames, bodies, 25, 3)) + np.array([0.0, 0.0, 3.0])
        joints[1] = 0
        if bodies == 2:
            joints[-1, 1] = 0
        path = folder / f"seed{index}.skeleton"
        write_skeleton_file(path, joints)
        seeds.append(path.read_bytes())
    return seeds


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


def parse_skeleton(path: Path) -> object:
    """What `data prepare` does with one file: read it and select the actors."""
    from mksgn.train.data.body_selection import select_bodies
    from mksgn.train.data.skeleton_file import read_skeleton_file

    return select_bodies(read_skeleton_file(path))


SKELETON = Target(
    name="skeleton",
    suffix=".skeleton",
    make_seeds=skeleton_seeds,
    mutations={
        **BYTE_MUTATIONS,
        "count": absurd_count,
        "coordinate": absurd_coordinate,
        "body_id": absurd_body_id,
        "lines": line_edit,
    },
    parse=parse_skeleton,
)


# ------------------------------------------------------------------------------ npy / npz


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


def _tiny_splits(frames: int, seed: int):
    from mksgn.train.data.formats import SkeletonArrays

    rng = np.random.default_rng(seed)

    def part(n: int, prefix: str) -> SkeletonArrays:
        data = rng.normal(0, 1, (n, 3, frames, 25, 2)).astype(np.float32)
        labels = np.arange(n) % 3
        return SkeletonArrays(data, labels, tuple(f"{prefix}{i}" for i in range(n)))

    return part(3, "tr"), part(2, "te")


def npz_seeds(folder: Path) -> list[bytes]:
    """CTR-GCN npz files as mksgn writes them (compressed, plain, with class names)."""
    from mksgn.train.data.formats import write_ctrgcn_npz

    folder.mkdir(parents=True, exist_ok=True)
    seeds = []
    for index, compressed in enumerate((True, False)):
        train, test = _tiny_splits(4 + index, index)
        path = folder / f"seed{index}.npz"
        names = ("a", "b", "c") if index else None
        write_ctrgcn_npz(path, train, test, 3, class_names=names, compressed=compressed)
        seeds.append(path.read_bytes())
    return seeds


def parse_dataset(path: Path) -> object:
    """What `data inspect` and `train` do: open, summarise every split, load one."""
    from mksgn.train.data.formats import open_dataset
    from mksgn.train.data.inspect import inspect_dataset

    dataset = open_dataset(path)
    info = inspect_dataset(path)
    for split in dataset.splits:
        dataset.split_shape(split)
    if dataset.splits:
        dataset.load(dataset.splits[0])
    return info


NPZ = Target(
    name="npz",
    suffix=".npz",
    make_seeds=npz_seeds,
    mutations={
        **BYTE_MUTATIONS,
        "header": npz_member_mutation(mutate_npy_header),
        "values": npz_member_mutation(poison_npy_values),
        "member_bytes": npz_member_mutation(truncate),
        "keys": npz_keys,
    },
    parse=parse_dataset,
)


# ------------------------------------------------------------------- ST-GCN npy + label pkl

# An ST-GCN case is one "bundle": the pickled dict {file name: bytes} of a dataset folder.


def _bundle(files: dict[str, bytes]) -> bytes:
    return pickle.dumps(files)


def _unbundle(data: bytes) -> dict[str, bytes]:
    return pickle.loads(data)  # our own bundle, never a file from outside


def stgcn_seeds(folder: Path) -> list[bytes]:
    """ST-GCN folders: train/val data .npy with label .pkl (protocol 2 and 4)."""
    seeds = []
    for index, protocol in enumerate((2, 4)):
        train, test = _tiny_splits(4, 10 + index)
        files = {}
        for prefix, part in (("train", train), ("val", test)):
            files[f"{prefix}_data_joint.npy"] = npy_bytes(part.data[..., : 1 + index])
            labels = [int(v) for v in part.labels]
            files[f"{prefix}_label.pkl"] = pickle.dumps((list(part.names), labels), protocol)
        seeds.append(_bundle(files))
    return seeds


def stgcn_file_mutation(inner: Callable[[bytes, int], bytes], suffix: str):
    """Apply a mutation to one file of the bundle whose name ends with `suffix`."""

    def mutation(data: bytes, choice: int) -> bytes:
        files = _unbundle(data)
        names = sorted(name for name in files if name.endswith(suffix))
        if not names:
            return data
        rng = np.random.default_rng(choice)
        name = names[int(rng.integers(len(names)))]
        files[name] = inner(files[name], int(rng.integers(2**31)))
        return _bundle(files)

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
    files = _unbundle(data)
    names = sorted(files)
    del files[names[choice % len(names)]]
    return _bundle(files)


def place_stgcn(folder: Path, data: bytes) -> Path:
    """Write the bundle's files into `folder`; the folder is what is parsed."""
    for name, content in _unbundle(data).items():
        (folder / name).write_bytes(content)
    return folder


STGCN = Target(
    name="stgcn-npy+pkl",
    suffix="",
    make_seeds=stgcn_seeds,
    mutations={
        "npy_truncate": stgcn_file_mutation(truncate, ".npy"),
        "npy_flip": stgcn_file_mutation(flip, ".npy"),
        "npy_header": stgcn_file_mutation(mutate_npy_header, ".npy"),
        "npy_values": stgcn_file_mutation(poison_npy_values, ".npy"),
        "pkl_truncate": stgcn_file_mutation(truncate, ".pkl"),
        "pkl_flip": stgcn_file_mutation(flip, ".pkl"),
        "pkl_insert": stgcn_file_mutation(insert_garbage, ".pkl"),
        "pkl_content": stgcn_file_mutation(label_content, ".pkl"),
        "drop_file": drop_file,
    },
    parse=parse_dataset,
    place=place_stgcn,
)


# ---------------------------------------------------------------------------- PYSKL pickle


def pyskl_content(seed: int) -> dict:
    """A small PYSKL annotation dict with two benchmarks."""
    rng = np.random.default_rng(seed)
    annotations = []
    for index in range(5):
        frames = int(rng.integers(3, 7))
        keypoint = rng.normal(0, 1, (1 + index % 2, frames, 25, 3)).astype(np.float16)
        annotations.append(
            dict(
                frame_dir=f"S001C001P00{index}R001A00{index % 3 + 1}",
                label=index % 3,
                keypoint=keypoint,
                total_frames=frames,
            )
        )
    names = [a["frame_dir"] for a in annotations]
    split = {"xsub_train": names[:3], "xsub_val": names[3:], "xview_train": names[1:]}
    split["xview_val"] = names[:1]
    return {"split": split, "annotations": annotations}


def pyskl_seeds(folder: Path) -> list[bytes]:
    """PYSKL pickles (protocol 4 and 5, the latter with out-of-band-capable array frames)."""
    return [pickle.dumps(pyskl_content(seed), protocol) for seed, protocol in ((0, 4), (1, 5))]


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


PYSKL = Target(
    name="pyskl-pkl",
    suffix=".pkl",
    make_seeds=pyskl_seeds,
    mutations={**BYTE_MUTATIONS, "structure": pyskl_structure},
    parse=parse_dataset,
)


# ------------------------------------------------------------------------------ NIR graphs


def _lif(shape: tuple[int, ...]):
    import nir

    return nir.LIF(
        tau=np.full(shape, 2e-4),
        r=np.full(shape, 2.0),
        v_leak=np.zeros(shape),
        v_threshold=np.ones(shape),
        v_reset=np.zeros(shape),
    )


def nir_graphs() -> list[object]:
    """Small graphs covering Affine, Conv1d, Conv2d, pooling, Flatten, CubaLIF and a subgraph."""
    import nir

    rng = np.random.default_rng(0)
    dense = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([4])),
            "fc": nir.Affine(weight=rng.normal(0, 1, (3, 4)), bias=np.zeros(3)),
            "lif": _lif((3,)),
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
    )
    conv1d = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([2, 6])),
            "conv": nir.Conv1d(
                input_shape=6,
                weight=rng.normal(0, 1, (2, 2, 3)),
                stride=1,
                padding=1,
                dilation=1,
                groups=1,
                bias=np.zeros(2),
            ),
            "lif": _lif((2, 6)),
            "flat": nir.Flatten(input_type={"input": np.array([2, 6])}, start_dim=0),
            "fc": nir.Linear(weight=rng.normal(0, 1, (3, 12))),
            "li": nir.LI(tau=np.full(3, 2e-4), r=np.ones(3), v_leak=np.zeros(3)),
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[
            ("input", "conv"),
            ("conv", "lif"),
            ("lif", "flat"),
            ("flat", "fc"),
            ("fc", "li"),
            ("li", "output"),
        ],
        type_check=False,
    )
    conv2d = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([1, 4, 4])),
            "conv": nir.Conv2d(
                input_shape=(4, 4),
                weight=rng.normal(0, 1, (2, 1, 3, 3)),
                stride=1,
                padding=1,
                dilation=1,
                groups=1,
                bias=np.zeros(2),
            ),
            "cuba": nir.CubaLIF(
                tau_syn=np.full((2, 4, 4), 2e-4),
                tau_mem=np.full((2, 4, 4), 3e-4),
                r=np.ones((2, 4, 4)),
                v_leak=np.zeros((2, 4, 4)),
                v_threshold=np.ones((2, 4, 4)),
                v_reset=np.zeros((2, 4, 4)),
                w_in=np.ones((2, 4, 4)),
            ),
            "pool": nir.SumPool2d(
                kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])
            ),
            "lif": _lif((2, 2, 2)),
            "output": nir.Output(output_type=np.array([2, 2, 2])),
        },
        edges=[
            ("input", "conv"),
            ("conv", "cuba"),
            ("cuba", "pool"),
            ("pool", "lif"),
            ("lif", "output"),
        ],
        type_check=False,
    )
    return [dense, conv1d, conv2d]


def nir_seeds(folder: Path) -> list[bytes]:
    """The NIR graphs as files written by nir.write."""
    import nir

    folder.mkdir(parents=True, exist_ok=True)
    seeds = []
    for index, graph in enumerate(nir_graphs()):
        path = folder / f"seed{index}.nir"
        nir.write(path, graph)
        seeds.append(path.read_bytes())
    return seeds


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


def parse_nir(path: Path) -> object:
    """What `mksgn convert` does: read, validate, lower to Lava, quantise, write an artifact."""
    from mksgn.convert import nir_io
    from mksgn.convert.artifact import convert_nir

    out = path.with_suffix(".artifact")
    try:
        with unittest.mock.patch.object(nir_io, "NIR_READ_TIMEOUT_S", NIR_CASE_READ_S):
            convert_nir(path, out, fixed_point=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return out


NIR = Target(
    name="nir",
    suffix=".nir",
    make_seeds=nir_seeds,
    mutations={
        **BYTE_MUTATIONS,
        "value": nir_value,
        "huge_shape": nir_huge_shape,
        "edges": nir_edges,
        "delete": nir_delete,
    },
    parse=parse_nir,
    byte_weight=0.3,  # most damaged HDF5 files stop in h5py; the graph checks need readable ones
)


# ------------------------------------------------------------------------------ checkpoints


def checkpoint_seeds(folder: Path) -> list[bytes]:
    """Checkpoints as `mksgn train` writes them: a few-channel MK-SGN with AdamW state, a GCN."""
    import dataclasses

    import torch

    from mksgn.train.checkpoint import save_checkpoint
    from mksgn.train.models import build_model, preset_config
    from mksgn.train.models.config import LayerSpec

    seeds = []
    for name in ("mk-sgn", "gcn"):
        torch.manual_seed(0)
        config = preset_config(name, "tiny", num_classes=3, time_steps=2, frames=8)
        if name == "mk-sgn":
            config = dataclasses.replace(
                config, layers=(LayerSpec("sgc", 4), LayerSpec("stc", 4)), temporal_kernel=3
            )
        model = build_model(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        model(torch.randn(2, 3, 8, 25, 2)).logits.sum().backward()
        optimizer.step()
        path = folder / f"{name}.pt"
        save_checkpoint(
            path,
            config=config,
            model_state=model.state_dict(),
            optimizer_state=optimizer.state_dict(),
            scheduler_state={"last_epoch": 1},
            epoch=1,
            metrics={"test_acc": 0.5},
            rng_state={"torch": torch.get_rng_state()},
        )
        seeds.append(path.read_bytes())
    return seeds


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


def parse_checkpoint(path: Path) -> object:
    """What `evaluate`, `export` and `train --resume` read: the model with its weights, and the
    data of every other tensor (optimizer and RNG state)."""
    from mksgn.train.checkpoint import load_model, tensors_in

    model, _, checkpoint = load_model(path)
    for _, tensor in tensors_in([checkpoint.optimizer_state, checkpoint.rng_state]):
        tensor.sum()  # reads the storage: one pointing past its bytes would crash here
    return model


CHECKPOINT = Target(
    name="checkpoint",
    suffix=".pt",
    make_seeds=checkpoint_seeds,
    mutations={
        **BYTE_MUTATIONS,
        "pickle_int": checkpoint_record_mutation(pickle_int, pickle_only=True),
        "pickle_flip": checkpoint_record_mutation(flip, pickle_only=True),
        "record": checkpoint_record_mutation(truncate, pickle_only=False),
        "drop": drop_record,
    },
    parse=parse_checkpoint,
    byte_weight=0.3,  # torch's zip reader refuses most damaged archives before the pickle
)


# ------------------------------------------------------------------------- --input arrays

INPUT_GRAPH_INDEX = 1  # the Conv1d graph: input (2, 6)


def input_seeds(folder: Path) -> list[bytes]:
    """Arrays shaped (T, 2, 6) and (samples, T, 2, 6), float32 and int."""
    rng = np.random.default_rng(0)
    return [
        npy_bytes(rng.normal(0, 1, (3, 2, 6)).astype(np.float32)),
        npy_bytes(rng.normal(0, 1, (2, 3, 2, 6))),
        npy_bytes(rng.integers(0, 2, (2, 3, 2, 6)).astype(np.int8)),
    ]


def parse_input(path: Path) -> object:
    """What `--input X.npy` does before a run: read and check it against the graph's Input."""
    from mksgn.targets.inputs import array_inputs

    return array_inputs(path, nir_graphs()[INPUT_GRAPH_INDEX])


INPUT = Target(
    name="--input npy",
    suffix=".npy",
    make_seeds=input_seeds,
    mutations={
        **BYTE_MUTATIONS,
        "header": mutate_npy_header,
        "values": poison_npy_values,
    },
    parse=parse_input,
)

TARGETS: tuple[Target, ...] = (SKELETON, NPZ, STGCN, PYSKL, NIR, CHECKPOINT, INPUT)


def fuzz_all(cases: int, work: Path, seed: int = 0) -> dict[str, Tally]:
    """`cases` mutations of every target; name -> Tally."""
    tallies = {}
    for target in TARGETS:
        # Named before it runs: a crash (the segfault a forged pickle once caused) then says where.
        print(f"fuzzing {target.name}: {cases} cases", file=sys.stderr, flush=True)
        folder = work / target.name.replace(" ", "_").replace("-", "")
        tallies[target.name] = fuzz(target, cases, folder, seed)
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)
    return tallies


def summary_rows(tallies: dict[str, Tally]) -> list[dict[str, object]]:
    """One JSON-able row per target."""
    return [
        {
            "parser": name,
            "cases": tally.cases,
            "ok": tally.outcomes.get(OK, 0),
            "error": tally.outcomes.get(ERROR, 0),
            "defects": sum(tally.outcomes.get(kind, 0) for kind in DEFECTS),
            "peak_mib": round(tally.peak_bytes / 2**20, 1),
            "first_defects": tally.defects[:5],
        }
        for name, tally in tallies.items()
    ]


if __name__ == "__main__":  # quick manual run: python -m mksgn.benchmarks.support.fuzz [cases]
    import json
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rows = summary_rows(fuzz_all(int(sys.argv[1]) if len(sys.argv) > 1 else 100, Path(tmp)))
    print(json.dumps(rows, indent=1))
    os._exit(0)
