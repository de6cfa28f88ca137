"""`mksgn convert`: a NIR graph -> a deployable Lava artifact folder (graph, manifest, netx HDF5)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import h5py
import nir
import numpy as np

from mksgn import run_files
from mksgn.atomic import atomic_directory
from mksgn.convert.fixed_point import (
    FixedPlan,
    check_matches,
    load_fixed_plan,
    quantize_plan,
    save_fixed_plan,
)
from mksgn.convert.lava_graph import build_plan
from mksgn.convert.lava_plan import LavaPlan, lava_order, load_plan, nir_node_kinds, save_plan
from mksgn.errors import MksgnError

NETX_FILE = "model.net"
FIXED_FILE = "fixed_point.npz"
PLAN_FILE = "plan.npz"  # the lowered plan: what runs, without lowering the NIR again
# Without --calibrate, fixed point is quantised for inputs in [-1, 1] (spike trains, or inputs
# normalised to that range); a run with larger inputs is refused, naming --calibrate.
DEFAULT_INPUT_RANGE = 1.0


@dataclasses.dataclass
class Artifact:
    """A folder `mksgn convert` wrote, checked against its checksums: what a run executes."""

    folder: Path
    graph: nir.NIRGraph
    graph_file: Path
    dt: float
    plan: LavaPlan  # the graph lowered with the stored dt
    fixed: FixedPlan | None  # the integers quantised at convert time (None: a float artifact)
    manifest: dict


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_replaceable(out: Path, force: bool) -> None:
    """Refuse to replace an existing --out without --force, or one that is not an artifact."""
    if not out.exists():
        return
    if not out.is_dir():
        raise MksgnError(f"--out {out} is a file; give a folder for the artifact")
    if not force:
        raise MksgnError(
            f"--out {out} already exists; pass --force to replace it or choose another --out"
        )
    if any(out.iterdir()) and not (out / run_files.MANIFEST).is_file():
        raise MksgnError(
            f"--out {out} is not a folder written by 'mksgn convert' (it has no "
            f"{run_files.MANIFEST}), and replacing it would delete everything in it; choose "
            "another --out"
        )


def convert_nir(
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    fixed_point: bool = False,
    dt: float | None = None,
    netx: bool = False,
    force: bool = False,
    input_abs_max: float | None = None,
    calibration: str | None = None,
) -> dict[str, object]:
    """Validate `model`, lower it to Lava (dt None: DEFAULT_DT) and write DIR atomically; return
    the manifest. Fixed point is quantised once, here, for inputs up to `input_abs_max` (None:
    DEFAULT_INPUT_RANGE), measured on the data `calibration` names, and stored with the graph.
    An existing DIR is replaced only with `force`, and only if it is an artifact of this command
    (or empty): its whole tree is removed."""
    from mksgn.convert.nir_io import read_nir
    from mksgn.convert.nir_nodes import DEFAULT_DT
    from mksgn.convert.nir_validation import validate_graph

    dt = DEFAULT_DT if dt is None else dt
    model = Path(model)
    graph = read_nir(model)
    validate_graph(graph, where=str(model))
    plan = build_plan(graph, dt)
    # netx files carry no weight exponent, so a netx artifact is quantised without them.
    abs_max = DEFAULT_INPUT_RANGE if input_abs_max is None else float(input_abs_max)
    if not (np.isfinite(abs_max) and abs_max > 0):
        raise MksgnError(f"the calibration input range must be positive and finite, got {abs_max}")
    fixed = None
    if fixed_point or netx:
        fixed = quantize_plan(plan, abs_max, weight_exponents=not netx)
    manifest: dict[str, object] = {
        "source": model.name,
        "dt": dt,
        "fixed_point": fixed_point,
        "pipeline_depth": plan.depth,
        "input": {"node": plan.input_name, "shape": list(plan.input_nir_shape)},
        "outputs": list(plan.outputs),
        "records": {k: list(v) for k, v in plan.records.items()},
        "nodes": nir_node_kinds(plan),
        "metadata": json_safe(getattr(graph, "metadata", {}) or {}),
    }
    manifest["loihi2"] = resource_report(plan, fixed, abs_max)
    if fixed is not None:
        manifest["calibration"] = {
            "data": calibration or f"none: inputs assumed within ±{DEFAULT_INPUT_RANGE:g}",
            "input_abs_max": abs_max,
        }
        manifest["fixed_point_parameters"] = fixed.report()
        manifest["input_shift"] = fixed.input_shift
    check_replaceable(Path(out), force)
    with atomic_directory(out) as tmp:
        shutil.copyfile(model, tmp / run_files.GRAPH)
        save_plan(plan, tmp / PLAN_FILE)
        manifest["plan_file"] = PLAN_FILE
        if fixed_point:
            save_fixed_plan(fixed, tmp / FIXED_FILE)
            manifest["fixed_point_file"] = FIXED_FILE
        if netx:
            write_netx(plan, fixed, tmp / NETX_FILE)
            manifest["netx"] = NETX_FILE
        written = sorted(p.name for p in tmp.iterdir())
        manifest["sha256"] = {name: sha256(tmp / name) for name in written}
        (tmp / run_files.MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def resource_report(plan: LavaPlan, fixed: FixedPlan | None, abs_max: float) -> dict:
    """The Loihi 2 resource report at the quantised precision (a float artifact is quantised
    just for counting); {"error": ...} when the network has no Loihi 2 fixed point."""
    from mksgn.convert.loihi2_resources import loihi2_resources

    try:
        return loihi2_resources(plan, fixed or quantize_plan(plan, abs_max))
    except MksgnError as error:
        return {"error": str(error)}


def read_manifest(folder: Path) -> dict:
    """manifest.json of an artifact folder; MksgnError naming what to run if it is unreadable."""
    path = folder / run_files.MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise MksgnError(
            f"{path} is not a manifest written by 'mksgn convert' ({error}); convert again"
        ) from None
    if not isinstance(manifest, dict):
        raise MksgnError(f"{path} is not a manifest written by 'mksgn convert'; convert again")
    return manifest


def read_artifact(folder: str | os.PathLike[str]) -> Artifact:
    """The network a converted folder stores, after checking every file against its checksum."""
    from mksgn.convert.nir_io import read_nir
    from mksgn.convert.nir_nodes import DEFAULT_DT

    folder = Path(folder)
    manifest = read_manifest(folder)
    again = f"run 'mksgn convert' again to rebuild {folder}"
    for name, digest in dict(manifest.get("sha256", {})).items():
        path = folder / name
        if not path.is_file():
            raise MksgnError(f"{path} is missing from the converted folder; {again}")
        if sha256(path) != digest:
            raise MksgnError(f"{path} does not match its checksum in the manifest; {again}")
    graph_file = folder / run_files.GRAPH
    if not graph_file.is_file():
        raise MksgnError(f"{graph_file} is missing from the converted folder; {again}")
    graph = read_nir(graph_file)
    dt = float(manifest.get("dt", DEFAULT_DT))
    if "plan_file" not in manifest:
        raise MksgnError(
            f"{folder} was converted by an older mksgn that did not store the lowered plan; {again}"
        )
    plan, fixed = load_plan(folder / manifest["plan_file"]), None
    if manifest.get("fixed_point"):
        if "fixed_point_file" not in manifest:
            raise MksgnError(
                f"{folder} was converted with --fixed-point by an older mksgn that did not store "
                f"the quantised parameters; {again}"
            )
        fixed = load_fixed_plan(folder / manifest["fixed_point_file"])
        check_matches(fixed, plan, str(folder))
    return Artifact(folder, graph, graph_file, dt, plan, fixed, manifest)


def json_safe(value: object) -> object:
    """Metadata as plain JSON types."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def netx_chain(plan: LavaPlan) -> list[int]:
    """Synapse indices of a plain feed-forward chain from the input, or MksgnError naming why not."""
    order, current = [], plan.input_name
    for _ in range(len(plan.synapses)):
        outgoing = [i for i, s in enumerate(plan.synapses) if s.source == current]
        if not outgoing:
            break
        if len(outgoing) > 1:
            raise MksgnError(f"netx needs a chain of layers, but node '{current}' branches")
        syn = plan.synapses[outgoing[0]]
        pop = plan.populations[syn.target]
        incoming = [s for s in plan.synapses if s.target == syn.target]
        if len(incoming) > 1 or syn.back_edge or syn.extra_hops:
            raise MksgnError(f"netx cannot express node '{syn.target}': it merges or recurs")
        if pop.nir_type not in ("LIF", "CubaLIF", "IF"):
            raise MksgnError(
                f"netx has no layer for node '{syn.target}' ({pop.nir_type}): only CUBA neurons"
            )
        order.append(outgoing[0])
        current = syn.target
    if len(order) != len(plan.synapses):
        raise MksgnError("netx cannot express this graph: it is not a single chain of layers")
    return order


def write_netx(plan: LavaPlan, fixed: FixedPlan | None, path: Path) -> None:
    """Write lava-dl's netx HDF5 for a chain of dense/conv layers with CUBA neurons."""
    if fixed is None:
        raise MksgnError("netx export needs fixed-point parameters")
    order = netx_chain(plan)
    # Built in memory and written by Python: HDF5 writing straight to a full disk crashes.
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        layers = handle.create_group("layer")
        first = layers.create_group("0")
        first["type"] = "input"
        first["shape"] = np.array(plan.input_lava_shape[::-1], dtype=np.int64)  # netx: (C, H, W)
        position = 1
        for index in order:
            syn, qsyn = plan.synapses[index], fixed.synapses[index]
            pop, qpop = plan.populations[syn.target], fixed.populations[syn.target]
            source_shape = (
                plan.input_nir_shape
                if syn.source == plan.input_name
                else plan.populations[syn.source].nir_shape
            )
            weight = qsyn.weight.astype(np.int64) * 2**qsyn.weight_exp
            if syn.kind == "dense" and len(source_shape) > 1:
                # netx flattens (W, H, C) as transpose -> (C, H, W) -> flat: NIR's order.
                layers.create_group(str(position))["type"] = "flatten"
                position += 1
            group = layers.create_group(str(position))
            position += 1
            if syn.kind == "conv":
                group["type"] = "conv"
                # netx stores torch layout (C_out, C_in, kh, kw) and flips it itself.
                group["weight"] = weight.transpose(0, 3, 2, 1)[:, :, ::-1, ::-1]
                group["stride"] = np.array(syn.conv["stride"][::-1])
                group["padding"] = np.array(syn.conv["padding"][::-1])
                group["dilation"] = np.array(syn.conv["dilation"][::-1])
                group["groups"] = int(syn.conv["groups"])
                group["inChannels"] = int(syn.conv["input_shape"][-1])
                group["outChannels"] = int(weight.shape[0])
                group["kernelSize"] = np.array(weight.shape[1:3][::-1])
                group["shape"] = np.array(pop.lava_shape[::-1])
            else:
                if len(pop.nir_shape) != 1:
                    raise MksgnError(f"netx dense layers are flat; node '{syn.target}' is not")
                group["type"] = "dense"
                group["weight"] = weight[:, np.argsort(lava_order(source_shape))]
                group["shape"] = np.array([int(np.prod(pop.lava_shape))])
            if np.any(qpop.bias_mant):
                group["bias"] = qpop.bias_mant.ravel() * 2**qpop.bias_exp
            neuron = group.create_group("neuron")
            neuron["type"] = "CUBA"
            neuron["iDecay"] = int(qpop.du) + 1
            neuron["vDecay"] = int(qpop.dv)
            neuron["vThMant"] = int(qpop.vth)
            neuron["refDelay"] = 1
            neuron["gradedSpike"] = False
        # netx counts the layers from the file; keep lava-dl's simulation keys present
        handle["simulation/Ts"] = 1
        handle["simulation/tSample"] = 1
    path.write_bytes(buffer.getbuffer())


def describe(graph: nir.NIRGraph) -> str:
    """One line naming a graph's node count (for CLI messages)."""
    return f"{len(graph.nodes)} nodes, {len(graph.edges)} edges"
