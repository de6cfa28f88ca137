"""Inputs for `mksgn simulate`: the graph to run, and input sequences from a skeleton dataset
(encoded the way the exported model expects) or from an .npy array."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import nir
import numpy as np

from mksgn import run_files
from mksgn.convert.nir_io import read_nir
from mksgn.convert.nir_validation import input_shape
from mksgn.errors import MksgnError
from mksgn.train.data.formats import map_npy
from mksgn.train.data.layout import NTU_25, SkeletonLayout

if TYPE_CHECKING:
    from mksgn.convert.artifact import Artifact
    from mksgn.targets.shard import Shard

REQUIRED_METADATA = ("frames", "modalities", "time_steps", "nodes")


def find_graph_file(path: str | os.PathLike[str]) -> Path:
    """MODEL.nir itself, or the NIR graph inside a converted artifact folder."""
    path = Path(path)
    if not path.is_dir():
        return path
    preferred = path / run_files.GRAPH
    if preferred.is_file():
        return preferred
    candidates = sorted(path.glob("*.nir"))
    if len(candidates) != 1:
        raise MksgnError(
            f"{path} is a folder without model.nir and with {len(candidates)} .nir files; pass "
            "the .nir file or a folder written by 'mksgn convert'"
        )
    return candidates[0]


FIXED_POINT_BACKENDS = ("lava-fixed", "loihi-emu")


def check_artifact_backend(path: str | os.PathLike[str], backend: str) -> None:
    """Refuse a float backend on a folder that `mksgn convert --fixed-point` wrote: it would run
    in float what was converted for Loihi's integers, and say nothing."""
    manifest = Path(path) / run_files.MANIFEST
    if not Path(path).is_dir() or not manifest.is_file():
        return
    try:
        fixed = bool(json.loads(manifest.read_text()).get("fixed_point", False))
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise MksgnError(f"{manifest} is not a manifest written by 'mksgn convert'") from None
    if fixed and backend not in FIXED_POINT_BACKENDS:
        raise MksgnError(
            f"{path} holds a fixed-point artifact ('mksgn convert --fixed-point'); run it with "
            f"--backend {' or '.join(FIXED_POINT_BACKENDS)}, or convert it again without "
            f"--fixed-point for --backend {backend}"
        )


def load_artifact(path: str | os.PathLike[str]) -> Artifact | None:
    """The checked contents of a folder `mksgn convert` wrote, or None for anything else."""
    from mksgn.convert.artifact import read_artifact

    path = Path(path)
    if not (path.is_dir() and (path / run_files.MANIFEST).is_file()):
        return None
    return read_artifact(path)


def load_graph(path: str | os.PathLike[str]) -> tuple[nir.NIRGraph, Path]:
    """Read the graph named by a .nir path or an artifact folder."""
    graph_file = find_graph_file(path)
    return read_nir(graph_file), graph_file


def array_inputs(path: str | os.PathLike[str], graph: nir.NIRGraph) -> np.ndarray:
    """X.npy shaped (T, *input shape) or (samples, T, *input shape) -> (samples, T, *shape)."""
    path = Path(path)
    try:
        array = map_npy(path)
    except Exception as error:  # ValueError (pickled objects), OSError, EOFError, ...
        raise MksgnError(f"{path} is not a readable .npy array ({error})") from None
    if not isinstance(array, np.ndarray):
        raise MksgnError(f"{path} holds several arrays (.npz); --input needs one .npy array")
    if array.dtype.kind not in "biuf":
        raise MksgnError(f"{path} holds {array.dtype} values; --input needs numbers")
    expected = input_shape(graph)
    shape_text = ", ".join(map(str, expected))
    if array.ndim == len(expected) + 1 and array.shape[1:] == expected:
        array = array[None]
    elif array.ndim != len(expected) + 2 or array.shape[2:] != expected:
        raise MksgnError(
            f"{path} holds an array shaped {array.shape}, but the graph's Input expects "
            f"(time steps, {shape_text}) or (samples, time steps, {shape_text})"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise MksgnError(f"{path} holds no samples or no time steps (shape {array.shape})")
    # Checked after the cast: float64 values beyond float32's range become infinite.
    with np.errstate(over="ignore", invalid="ignore"):  # reported below, as one Error line
        array = np.array(array, dtype=np.float32)
    if not np.all(np.isfinite(array)):
        raise MksgnError(f"{path} contains NaN or infinite values (or values beyond float32)")
    return array


def graph_metadata(graph: nir.NIRGraph, graph_file: Path) -> dict:
    """The mksgn metadata (frames, modalities, time steps, nodes) needed to encode a dataset."""
    metadata = graph.metadata or {}
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise MksgnError(
            f"{graph_file} lacks the metadata {missing} that 'mksgn export' writes, so skeleton "
            "data cannot be encoded for it; pass an encoded array with --input instead"
        )
    return metadata


def graph_layout(metadata: dict, graph_file: Path) -> SkeletonLayout:
    """The skeleton layout an exported graph was trained on (graphs before layouts: ntu-25)."""
    text = metadata.get("layout")
    if text is None:
        return NTU_25
    return SkeletonLayout.from_json(str(text), f"{graph_file}: metadata 'layout'")


def data_inputs(
    data_path: str | os.PathLike[str],
    graph: nir.NIRGraph,
    graph_file: Path,
    samples: int | None = None,
    benchmark: str | None = None,
    split: str = "test",
) -> tuple[np.ndarray, np.ndarray]:
    """A split (default: test) as (samples, T, V·C_enc, F) direct-coded inputs, and its labels.

    Each sample is test-sampled to the graph's frames, encoded into the graph's modalities, laid
    out node-major (index node·C_enc + channel) and presented identically at every time step.
    """
    import torch

    from mksgn.train.data.dataset import SkeletonDataset
    from mksgn.train.data.transforms import TestTransform
    from mksgn.train.models.output import encode_input

    metadata = graph_metadata(graph, graph_file)
    frames, steps = int(metadata["frames"]), int(metadata["time_steps"])
    modalities = tuple(metadata["modalities"])
    layout = graph_layout(metadata, graph_file)
    dataset = SkeletonDataset(
        data_path,
        split=split,
        transform=TestTransform(frames),
        benchmark=benchmark,
        layout=layout,
        layout_source=f"the graph in {graph_file}",
    )
    if "num_classes" in metadata and dataset.num_classes != int(metadata["num_classes"]):
        raise MksgnError(
            f"{data_path} has {dataset.num_classes} classes but the graph in {graph_file} "
            f"predicts {metadata['num_classes']}: use the dataset the model was trained on"
        )
    count = len(dataset) if samples is None else min(samples, len(dataset))
    if count == 0:
        raise MksgnError(f"{data_path} has no {split} samples")
    joints = torch.stack([dataset[index][0] for index in range(count)])
    labels = np.asarray(dataset.labels[:count], dtype=np.int64)
    if joints.shape[3] * joints.shape[4] != int(metadata["nodes"]):
        raise MksgnError(
            f"{data_path}: samples have {joints.shape[3]} joints × {joints.shape[4]} bodies but the "
            f"graph in {graph_file} expects {metadata['nodes']} graph nodes"
        )
    encoded = encode_input(joints, modalities, layout)  # (N, C_enc, F, V)
    count, channels, frames, nodes = encoded.shape
    layout = encoded.permute(0, 3, 1, 2).reshape(count, nodes * channels, frames).numpy()
    expected = input_shape(graph)
    if layout.shape[1:] != expected:
        raise MksgnError(
            f"encoded samples are shaped {layout.shape[1:]} but the Input of {graph_file} "
            f"expects {expected}"
        )
    repeated = np.broadcast_to(layout[:, None], (count, steps, *layout.shape[1:]))
    return repeated.astype(np.float32, copy=False), labels


def check_input_options(
    data_path: object, input_path: object, shard: Shard | None, out: object, part: str
) -> None:
    """The rules `simulate` and `energy` share: exactly one of --data and --input, and --out
    with --shard (`part` names the part file, e.g. 'PART.npz')."""
    if (data_path is None) == (input_path is None):
        raise MksgnError("give exactly one of --data PATH or --input X.npy")
    if shard is not None and out is None:
        raise MksgnError(f"--shard needs --out {part} (the file 'mksgn merge' reads)")


@dataclasses.dataclass
class RunInputs:
    """What a run of `simulate` or `energy` feeds its backend."""

    inputs: np.ndarray  # (samples, T, *input shape): this shard's slice
    labels: np.ndarray | None  # with --data
    abs_max: float | None  # input range every shard quantises for (None: the run's own)
    total: int  # samples over all shards


def gather_inputs(
    graph: nir.NIRGraph,
    graph_file: Path,
    data_path: str | os.PathLike[str] | None,
    input_path: str | os.PathLike[str] | None,
    samples: int | None = None,
    benchmark: str | None = None,
    shard: Shard | None = None,
    artifact: Artifact | None = None,
) -> RunInputs:
    """The encoded test split of --data or the --input array, the first `samples` of them, cut
    to the shard's slice; a fixed-point artifact's stored range is what every shard runs with."""
    from mksgn.targets.shard import shard_inputs

    labels = None
    if data_path is not None:
        inputs, labels = data_inputs(data_path, graph, graph_file, samples, benchmark)
    else:
        inputs = array_inputs(input_path, graph)
        inputs = inputs if samples is None else inputs[:samples]
    abs_max, total = None, len(inputs)
    if shard is not None:
        inputs, labels, abs_max = shard_inputs(inputs, labels, shard)
        if artifact is not None and artifact.fixed is not None:
            abs_max = artifact.fixed.input_abs_max
    return RunInputs(inputs, labels, abs_max, total)


def calibration_range(model: str | os.PathLike[str], data: str | os.PathLike[str]) -> float:
    """max |x| of the inputs `data` gives the graph in `model`: an .npy array as --input takes
    it, or a skeleton dataset's train split encoded as the graph expects."""
    from mksgn.targets.job import input_abs_max

    graph, graph_file = load_graph(model)
    if Path(data).suffix == ".npy":
        inputs = array_inputs(data, graph)
    else:
        inputs, _ = data_inputs(data, graph, graph_file, split="train")
    largest = input_abs_max(inputs)
    if largest == 0:
        raise MksgnError(f"--calibrate {data}: every input is 0; give data the network will see")
    return largest
