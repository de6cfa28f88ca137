"""`mksgn simulate`: run a NIR graph on one backend and summarise what it produced."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import nir
import numpy as np

from mksgn.atomic import atomic_savez, check_writable
from mksgn.convert.nir_nodes import BINARY_TYPES
from mksgn.diagnostics import output_warnings, silent_layer_warnings
from mksgn.errors import MksgnError
from mksgn.targets.base import RunResult, Target
from mksgn.targets.inputs import (
    check_artifact_backend,
    check_input_options,
    gather_inputs,
    load_artifact,
    load_graph,
)
from mksgn.targets.shard import SHARD_KEY, Shard, check_parts

if TYPE_CHECKING:
    from mksgn.convert.artifact import Artifact

RUN_KEY = "mksgn_run"  # npz member of `simulate --out`: backend, model, output node (JSON)
BACKENDS = ("lava-float", "lava-fixed", "loihi-emu", "loihi-emu-float", "snntorch")
PREDICTIONS_SHOWN = 20  # predictions printed by the text summary


def make_target(
    backend: str,
    timeout_s: float | None = None,
    batch_size: int | None = None,
    input_abs_max: float | None = None,
    artifact: Artifact | None = None,
) -> Target:
    """The backend object for a name in BACKENDS (Lava is imported only when asked for);
    `timeout_s` overrides the Lava watchdog's estimate; `batch_size` is how many samples run side
    by side (None: the backend's default); `input_abs_max` the input range fixed point assumes
    (None: the run's own); `artifact` a converted folder whose stored network the Lava-exact
    backends run."""
    if backend == "snntorch":
        import torch

        from mksgn.targets.reference import ReferenceTarget

        # float64 like Lava's float models: in float32, one membrane of the default demo's MK-SGN
        # sat within rounding of its threshold and 2 of 614,400 layer-1 spikes (and 400 after
        # them) differed from lava-float; in float64 every layer is identical.
        return ReferenceTarget(dtype=torch.float64)
    options = {"batch_size": batch_size, "input_abs_max": input_abs_max, "artifact": artifact}
    if backend in ("lava-float", "lava-fixed"):
        from mksgn.targets.lava import LavaTarget

        return LavaTarget(backend == "lava-fixed", timeout_s, **options)
    if backend in ("loihi-emu", "loihi-emu-float"):
        from mksgn.targets.emulator import EmulatorTarget

        return EmulatorTarget(backend == "loihi-emu", **options)
    raise MksgnError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


@dataclass
class Simulation:
    """A finished run with the labels (with --data) and the predicted classes."""

    graph_file: Path
    result: RunResult
    output: str
    predictions: np.ndarray
    labels: np.ndarray | None
    spike_counts: dict[str, int] = field(default_factory=dict)
    shard: dict | None = None  # with --shard: the slice run (targets.shard metadata)
    warnings: list[str] = field(default_factory=list)  # mksgn.diagnostics

    def to_dict(self) -> dict[str, object]:
        """The --json summary."""
        summary: dict[str, object] = {
            "model": str(self.graph_file),
            "backend": self.result.backend,
            "samples": int(self.predictions.size),
            "time_steps": self.result.time_steps,
        }
        if self.labels is not None:
            summary["accuracy"] = float(np.mean(self.predictions == self.labels))
        summary["predictions"] = self.predictions.tolist()
        summary["spike_counts"] = self.spike_counts
        summary["steps_per_sample"] = self.result.steps_per_sample
        summary["wall_s_per_sample"] = self.result.wall_s_per_sample  # build + run, per sample
        for key in ("build_s", "run_s_per_sample"):  # Lava and emulator runs time both
            if key in self.result.extra:
                summary[key] = float(self.result.extra[key])
        if self.shard is not None:
            summary["shard"] = self.shard
        summary["warnings"] = self.warnings
        return summary

    def timing_text(self) -> str:
        """Seconds per sample, and the one-off build apart where the backend measured it."""
        extra = self.result.extra
        if "build_s" in extra and "run_s_per_sample" in extra:
            return f"build {extra['build_s']:.3g} s, then {extra['run_s_per_sample']:.3g} s/sample"
        return f"{self.result.wall_s_per_sample:.3g} s/sample"

    def format(self) -> str:
        """A human-readable summary."""
        lines = [] if self.shard is None else [self.shard_line()]
        lines += [
            f"{self.result.backend}: {self.predictions.size} samples × {self.result.time_steps} "
            f"steps of {self.graph_file} ({self.timing_text()}, "
            f"{self.result.steps_per_sample} simulator steps/sample)"
        ]
        if self.labels is not None:
            lines.append(f"accuracy {np.mean(self.predictions == self.labels):.4f}")
        shown = self.predictions[:PREDICTIONS_SHOWN].tolist()
        more = (
            f" … ({self.predictions.size} in all; --out keeps them)"
            if (self.predictions.size > PREDICTIONS_SHOWN)
            else ""
        )
        lines.append(
            f"predicted class per sample ('{self.output}' summed over steps): {shown}{more}"
        )
        lines += [f"spikes {name}: {count}" for name, count in self.spike_counts.items()]
        return "\n".join(lines)

    def shard_line(self) -> str:
        """Which slice this part holds."""
        shard = self.shard or {}
        return (
            f"shard {shard['index']}/{shard['count']}: samples {shard['start']}..{shard['stop'] - 1}"
            f" of {shard['total_samples']} (merge the parts with 'mksgn merge')"
        )


def node_types(graph: nir.NIRGraph) -> dict[str, type]:
    """Type of every node by its recordable (flattened) name."""
    from mksgn.convert.nir_graph import flatten_graph

    return {name: type(node) for name, node in flatten_graph(graph).nodes.items()}


def simulate(
    model_path: str | os.PathLike[str],
    backend: str,
    data_path: str | os.PathLike[str] | None = None,
    input_path: str | os.PathLike[str] | None = None,
    samples: int | None = None,
    record: tuple[str, ...] = (),
    out: str | os.PathLike[str] | None = None,
    timeout_s: float | None = None,
    batch_size: int | None = None,
    shard: Shard | None = None,
    benchmark: str | None = None,
) -> Simulation:
    """Run a graph on --data (test split, encoded) or --input (an array) and summarise it; with
    `shard` only its slice of the samples, written to `out` with what `mksgn merge` needs."""
    check_input_options(data_path, input_path, shard, out, "PART.npz")
    if out is not None:
        check_writable(out)
    check_artifact_backend(model_path, backend)
    artifact = load_artifact(model_path)
    graph, graph_file = (
        (artifact.graph, artifact.graph_file) if artifact else load_graph(model_path)
    )
    run = gather_inputs(
        graph, graph_file, data_path, input_path, samples, benchmark, shard, artifact
    )
    inputs, labels, abs_max, total = run.inputs, run.labels, run.abs_max, run.total
    target = make_target(backend, timeout_s, batch_size, abs_max, artifact)
    result = target.run(graph, inputs, tuple(record))
    output = next(iter(graph.outputs))
    mean_output = result.recorded[output].mean(axis=1).reshape(len(inputs), -1)
    predictions = mean_output.argmax(axis=1).astype(np.int64)
    types = node_types(graph)
    spiking = {
        name: values
        for name, values in result.recorded.items()
        if issubclass(types.get(name, nir.Output), BINARY_TYPES)
    }
    counts = {name: int(values.sum()) for name, values in spiking.items()}
    warnings = silent_layer_warnings(
        {name: float(values.mean()) if values.size else None for name, values in spiking.items()}
    ) + output_warnings(mean_output, predictions)
    meta = None
    if shard is not None:
        meta = shard.metadata(
            "simulate",
            total,
            abs_max,
            model=str(graph_file),
            backend=result.backend,
            output=output,
            time_steps=result.time_steps,
            steps_per_sample=result.steps_per_sample,
            wall_s=result.wall_s_per_sample * len(inputs),
            spike_counts=counts,
        )
    if out is not None:
        arrays = dict(result.recorded)
        arrays["predictions"] = predictions
        if labels is not None:
            arrays["labels"] = labels
        if meta is not None:
            arrays[SHARD_KEY] = np.array(json.dumps(meta))
        arrays[RUN_KEY] = run_member(result.backend, graph_file, output, result.time_steps)
        atomic_savez(out, **arrays)
    return Simulation(graph_file, result, output, predictions, labels, counts, meta, warnings)


def run_member(backend: str, model: Path, output: str, time_steps: int) -> np.ndarray:
    """The RUN_KEY member of a `simulate --out` file: what ran, for `mksgn report`."""
    run = {"backend": backend, "model": str(model), "output": output, "time_steps": time_steps}
    return np.array(json.dumps(run))


def read_simulate_part(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """A simulate part's metadata and arrays."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as error:  # BadZipFile, ValueError, OSError, ...
        raise MksgnError(f"{path} is not a readable .npz part ({error})") from None
    if SHARD_KEY not in arrays:
        raise MksgnError(f"{path} was not written with --shard: it has no shard metadata")
    try:
        meta = json.loads(str(arrays.pop(SHARD_KEY)))
    except ValueError:
        raise MksgnError(f"{path}: its shard metadata is not JSON") from None
    arrays.pop(RUN_KEY, None)
    return meta, arrays


def merge_simulations(out: Path, paths: list[Path]) -> Simulation:
    """Concatenate simulate parts into OUT (what `simulate --out` writes for all samples) and
    return the merged Simulation."""
    parts = [read_simulate_part(path) for path in paths]
    metas = [meta for meta, _ in parts]
    order = check_parts(metas, [str(path) for path in paths], "simulate")
    keys = set(parts[0][1])
    for (_, arrays), path in zip(parts, paths, strict=True):
        if set(arrays) != keys:
            raise MksgnError(f"{path} recorded other nodes than {paths[0]}; cannot merge")
    arrays = {key: np.concatenate([parts[k][1][key] for k in order]) for key in sorted(keys)}
    first, total = metas[order[0]], int(metas[0]["total_samples"])
    for key, values in arrays.items():
        if len(values) != total:
            raise MksgnError(f"the parts' '{key}' arrays hold {len(values)} samples, not {total}")
    counts: dict[str, int] = {}
    for meta in metas:
        for name, count in meta["spike_counts"].items():
            counts[name] = counts.get(name, 0) + int(count)
    run = run_member(first["backend"], Path(first["model"]), first["output"], first["time_steps"])
    atomic_savez(out, **arrays, **{RUN_KEY: run})
    result = RunResult(
        backend=first["backend"],
        recorded={},
        time_steps=int(first["time_steps"]),
        steps_per_sample=int(first["steps_per_sample"]),
        wall_s_per_sample=sum(float(meta["wall_s"]) for meta in metas) / total,
    )
    return Simulation(
        Path(first["model"]),
        result,
        first["output"],
        arrays["predictions"],
        arrays.get("labels"),
        counts,
    )
