"""The fuzz targets: each reader of untrusted files with its seeds, its mutations and the parse
the command that reads such a file performs (TARGETS lists them all)."""

from __future__ import annotations

import shutil
import unittest.mock
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mksgn.benchmarks.support.fuzz.cases import NIR_CASE_READ_S
from mksgn.benchmarks.support.fuzz.encoding import unbundle
from mksgn.benchmarks.support.fuzz.mutators import (
    BYTE_MUTATIONS,
    absurd_body_id,
    absurd_coordinate,
    absurd_count,
    checkpoint_record_mutation,
    drop_file,
    drop_record,
    flip,
    insert_garbage,
    label_content,
    line_edit,
    mutate_npy_header,
    nir_delete,
    nir_edges,
    nir_huge_shape,
    nir_value,
    npz_keys,
    npz_member_mutation,
    pickle_int,
    poison_npy_values,
    pyskl_structure,
    stgcn_file_mutation,
    truncate,
)
from mksgn.benchmarks.support.fuzz.seeds import (
    INPUT_GRAPH_INDEX,
    checkpoint_seeds,
    input_seeds,
    nir_graphs,
    nir_seeds,
    npz_seeds,
    pyskl_seeds,
    skeleton_seeds,
    stgcn_seeds,
)


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


# --------------------------------------------------------------------------- .skeleton


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


def place_stgcn(folder: Path, data: bytes) -> Path:
    """Write the bundle's files into `folder`; the folder is what is parsed."""
    for name, content in unbundle(data).items():
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


PYSKL = Target(
    name="pyskl-pkl",
    suffix=".pkl",
    make_seeds=pyskl_seeds,
    mutations={**BYTE_MUTATIONS, "structure": pyskl_structure},
    parse=parse_dataset,
)


# ------------------------------------------------------------------------------ NIR graphs


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
