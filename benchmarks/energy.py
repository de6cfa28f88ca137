"""`mksgn energy`: operations and energy per sample of a spiking student, from the spikes a backend
actually produced, priced with a named preset, beside the GCN teacher's dense MACs.

Presets (pJ per accumulate / multiply-accumulate / neuron update):
- `45nm-fp32` (default): Horowitz 2014, FP32 add 0.9 and add+mult 4.6; neuron updates unpriced,
  as in the papers this project compares with.
- `45nm-int8`: Horowitz 2014, INT8 add 0.03, mult 0.2 (the MAC is priced at the multiply, as the
  issue specifies); neuron updates unpriced.
- `loihi`: Davies et al. 2018 (pre-silicon): 23.6 pJ per synaptic op, 81 pJ per active neuron
  update. Loihi does no MACs: the graded first-layer input arrives as graded spikes, each
  (non-zero input, non-zero weight) pair one synaptic op, so a MAC is priced like an AC (23.6 pJ).
  Every neuron is priced as active at every step (an upper bound: Davies reports 52 pJ inactive).
The GCN teacher is an ANN, priced as the hardware it would run on: a 45 nm accelerator at the
preset's MAC price for the 45 nm presets, and 45 nm FP32 (4.6 pJ per MAC) beside `loihi`, since
Loihi does not run ANNs (a Loihi synaptic-op price for a MAC would flatter neither side).
Counting rules: mksgn.benchmarks.counting (MACs of a directly coded first layer are counted once
per sample, not once per step).

Two conventions are reported side by side:
- exact deployed: the ACs and MACs the folded network does, counted from its spikes (NeuroBench's
  Effective_ACs/Effective_MACs), priced per operation;
- paper-style: E = pJ/MAC · FLOPs of the non-spiking (MAC) layers + pJ/AC · Σ SOP_l with
  SOP_l = in-rate_l × T × FLOPs_l, where FLOPs_l is the factorised count of the layer (channel
  mixing plus node aggregation, as GCN papers count; the export stores it in the graph's metadata).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path

import nir

from mksgn.benchmarks.counting import (
    GraphCount,
    LayerCount,
    average_counts,
    merge_counts,
    run_and_count,
)
from mksgn.benchmarks.prices import (
    DEFAULT_PRESET,
    PJ_PER_MJ,
    PUBLISHED_GCNS,
    PUBLISHED_MK_SGN_MJ,
    EnergyPreset,
    resolve_preset,
)
from mksgn.benchmarks.teacher_macs import check_teacher_task, teacher_macs
from mksgn.diagnostics import silent_layer_warnings
from mksgn.errors import MksgnError
from mksgn.targets.shard import Shard


def load_student(model: str | os.PathLike[str], workdir: str | os.PathLike[str]) -> nir.NIRGraph:
    """A NIR graph from MODEL.nir, a converted artifact folder, or a student checkpoint (exported
    to NIR in `workdir` first)."""
    import h5py

    from mksgn.convert.nir_io import read_nir
    from mksgn.targets.inputs import load_graph

    path = Path(model)
    if path.is_dir() or (path.is_file() and h5py.is_hdf5(path)):
        return load_graph(path)[0]
    if not path.is_file():
        raise MksgnError(f"model {path} does not exist (give a .nir file or a checkpoint)")
    from mksgn.convert.nir_export import student_to_nir, write_nir
    from mksgn.train.checkpoint import load_model

    student, config, _ = load_model(path)
    if config.model == "gcn":
        raise MksgnError(
            f"{path} holds the GCN teacher, which does not spike; give a Base-SGN/MK-SGN student "
            "as MODEL and the teacher with --teacher"
        )
    exported = write_nir(student_to_nir(student), Path(workdir) / "student.nir")
    return read_nir(exported)


def layer_record(layer: LayerCount, preset: EnergyPreset) -> dict[str, object]:
    """One entry of the report's "layers" (schema keys first, then mksgn's extra keys)."""
    return {
        "name": layer.name,
        "acs": float(layer.acs),
        "macs": float(layer.macs),
        "neuron_updates": float(layer.neuron_updates),
        "input_rate": float(layer.firing_rate),
        "dense_ops": float(layer.dense_ops),
        "energy_mj": preset.energy_mj(layer.acs, layer.macs, layer.neuron_updates),
        "kind": layer.kind,
        "sources": list(layer.sources),
        "direct_coded": bool(layer.direct_coded),
        "flops_per_step": float(layer.flops_per_step),
        "factorised_flops_per_step": layer.factorised_flops_per_step,
        "paper_sop": float(layer.paper_sop),
        "paper_flops": float(layer.paper_flops),
        "neuron_node": layer.neuron_node,
        "neuron_firing_rate": layer.neuron_firing_rate,
    }


def build_report(
    counts: GraphCount,
    preset: EnergyPreset,
    backend: str,
    wall_s_per_sample: float,
    steps_per_sample: int,
    teacher_macs_per_sample: float | None = None,
) -> dict[str, object]:
    """The `mksgn energy --json` object (the schema of issue 5)."""
    energy = preset.energy_mj(counts.acs, counts.macs, counts.neuron_updates)
    teacher = None
    reduction = None
    if teacher_macs_per_sample is not None:
        teacher_energy = teacher_macs_per_sample * preset.teacher_pj_per_mac / PJ_PER_MJ
        teacher = {
            "macs": float(teacher_macs_per_sample),
            "energy_mj": teacher_energy,
            "pj_per_mac": float(preset.teacher_pj_per_mac),
            "hardware": preset.teacher_hardware,
        }
        reduction = 100.0 * (1.0 - energy / teacher_energy) if teacher_energy > 0 else None
    paper_sop = float(sum(layer.paper_sop for layer in counts.layers))
    paper_flops = float(sum(layer.paper_flops for layer in counts.layers))
    return {
        "preset": preset.name,
        "pj_per_ac": float(preset.pj_per_ac),
        "pj_per_mac": float(preset.pj_per_mac),
        "pj_per_update": float(preset.pj_per_update),
        "time_steps": int(counts.time_steps),
        "samples": int(counts.samples),
        "backend": backend,
        "per_sample": {
            "acs": counts.acs,
            "macs": counts.macs,
            "neuron_updates": counts.neuron_updates,
            "energy_mj": energy,
        },
        "paper_style": {
            "flops_convention": (
                "factorised"
                if all(
                    layer.factorised_flops_per_step is not None
                    for layer in counts.layers
                    if layer.kind != "none"
                )
                else "deployed dense"
            ),
            "sop": paper_sop,
            "mac_flops": paper_flops,
            "energy_mj": (paper_sop * preset.pj_per_ac + paper_flops * preset.pj_per_mac)
            / PJ_PER_MJ,
        },
        "published": {
            "mk_sgn_ntu60_mj": PUBLISHED_MK_SGN_MJ,
            "gcns": [
                {
                    "model": model,
                    "gflops_per_stream": gflops,
                    "streams": streams,
                    "energy_mj": gflops * 1e9 * streams * preset.teacher_pj_per_mac / PJ_PER_MJ,
                }
                for model, gflops, streams in PUBLISHED_GCNS
            ],
        },
        "layers": [layer_record(layer, preset) for layer in counts.layers],
        "teacher": teacher,
        "reduction_percent": reduction,
        "simulated": {
            "backend": backend,
            "wall_s_per_sample": float(wall_s_per_sample),
            "steps_per_sample": int(steps_per_sample),
        },
        "warnings": silent_layer_warnings(
            {
                layer.neuron_node: layer.neuron_firing_rate
                for layer in counts.layers
                if layer.neuron_node is not None
            }
        ),
    }


def energy_report(
    model: str | os.PathLike[str],
    data_path: str | os.PathLike[str] | None = None,
    input_path: str | os.PathLike[str] | None = None,
    teacher: str | os.PathLike[str] | None = None,
    backend: str = "snntorch",
    samples: int | None = None,
    preset: str = DEFAULT_PRESET,
    ac_pj: float | None = None,
    mac_pj: float | None = None,
    update_pj: float | None = None,
    timeout_s: float | None = None,
    batch_size: int | None = None,
    shard: Shard | None = None,
    out: str | os.PathLike[str] | None = None,
    benchmark: str | None = None,
) -> dict[str, object]:
    """Run a student on --data (test split) or --input, count its operations and price them
    (batch_size: the emulator's samples per batch; None for its default); write the report to
    `out` if given. With `shard`, only its slice of the samples, and the report carries the
    totals `mksgn merge` adds up (key targets.shard.SHARD_KEY)."""
    from mksgn.targets.inputs import (
        check_artifact_backend,
        check_input_options,
        gather_inputs,
        load_artifact,
    )
    from mksgn.targets.shard import SHARD_KEY

    check_input_options(data_path, input_path, shard, out, "PART.json")
    if out is not None:
        from mksgn.atomic import check_writable

        check_writable(out)
    prices = resolve_preset(preset, ac_pj, mac_pj, update_pj)
    teacher_count = None if teacher is None else teacher_macs(teacher)
    check_artifact_backend(model, backend)
    artifact = load_artifact(model)
    if artifact is not None:
        graph = artifact.graph
    else:
        with tempfile.TemporaryDirectory(prefix="mksgn-energy-") as workdir:
            graph = load_student(model, workdir)
    if teacher is not None:
        check_teacher_task(teacher, graph.metadata or {}, model)
    run = gather_inputs(
        graph, Path(model), data_path, input_path, samples, benchmark, shard, artifact
    )
    inputs, abs_max, total = run.inputs, run.abs_max, run.total
    totals, result = run_and_count(
        graph, inputs, backend, timeout_s, batch_size, abs_max, totals=True, artifact=artifact
    )
    report = build_report(
        average_counts(totals),
        prices,
        backend,
        result.wall_s_per_sample,
        result.steps_per_sample,
        teacher_count,
    )
    if shard is not None:
        report[SHARD_KEY] = shard.metadata(
            "energy",
            total,
            abs_max,
            model=str(model),
            backend=backend,
            time_steps=int(totals.time_steps),
            steps_per_sample=int(result.steps_per_sample),
            wall_s=result.wall_s_per_sample * len(inputs),
            prices=dataclasses.asdict(prices),
            teacher_macs=teacher_count,
            totals=dataclasses.asdict(totals),
        )
    if out is not None:
        write_report(out, report)
    return report


def write_report(out: str | os.PathLike[str], report: dict) -> None:
    """The report as JSON, written atomically."""
    from mksgn.atomic import atomic_open

    with atomic_open(out, "w") as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")


def merge_energy(out: str | os.PathLike[str], paths: list[Path]) -> dict[str, object]:
    """The report of one run over all samples from the parts of a sharded `mksgn energy`
    (their totals added up, then priced as a single run prices them), written to OUT."""
    from mksgn.targets.shard import SHARD_KEY, check_parts

    metas = []
    for path in paths:
        try:
            metas.append(json.loads(Path(path).read_text())[SHARD_KEY])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise MksgnError(
                f"{path} is not a part written by 'mksgn energy --shard ... --out'"
            ) from None
    names = [str(path) for path in paths]
    order = check_parts(metas, names, "energy")
    for field in ("prices", "teacher_macs"):
        if len({json.dumps(meta.get(field)) for meta in metas}) > 1:
            raise MksgnError(f"the parts were priced differently ({field} differ); cannot merge")
    try:
        parts = [graph_count(metas[k]["totals"]) for k in order]
        prices = EnergyPreset(**metas[0]["prices"])
    except (KeyError, TypeError, ValueError) as error:
        raise MksgnError(f"a part's totals are malformed ({error})") from None
    first = metas[order[0]]
    total = int(first["total_samples"])
    report = build_report(
        average_counts(merge_counts(parts)),
        prices,
        first["backend"],
        sum(float(meta["wall_s"]) for meta in metas) / total,
        int(first["steps_per_sample"]),
        first["teacher_macs"],
    )
    write_report(out, report)
    return report


def graph_count(data: dict) -> GraphCount:
    """A GraphCount from its dataclasses.asdict form (a part's totals)."""
    layers = [
        LayerCount(**{**layer, "sources": tuple(layer["sources"])}) for layer in data["layers"]
    ]
    return GraphCount(**{**data, "layers": layers})


def format_energy(report: dict) -> str:
    """The per-layer table and totals, for a terminal."""
    header = (
        f"{'layer':<30} {'kind':<5} {'in-rate':>7} {'ACs':>12} {'MACs':>12} {'updates':>10} "
        f"{'dense ops':>12} {'paper ops':>12} {'energy mJ':>10}"
    )
    lines = [
        f"{report['backend']}: {report['samples']} samples × {report['time_steps']} steps; "
        f"preset {report['preset']} ({report['pj_per_ac']:g} pJ/AC, {report['pj_per_mac']:g} "
        f"pJ/MAC, {report['pj_per_update']:g} pJ/neuron update); counts per sample",
        header,
        "-" * len(header),
    ]
    for layer in report["layers"]:
        kind = layer["kind"] + ("*" if layer["direct_coded"] else "")
        lines.append(
            f"{layer['name']:<30} {kind:<5} {layer['input_rate']:>7.4f} {layer['acs']:>12.4g} "
            f"{layer['macs']:>12.4g} {layer['neuron_updates']:>10.4g} {layer['dense_ops']:>12.4g} "
            f"{layer['paper_sop'] + layer['paper_flops']:>12.4g} {layer['energy_mj']:>10.4g}"
        )
    total = report["per_sample"]
    lines.append("-" * len(header))
    lines.append(
        f"{'total':<30} {'':<5} {'':>7} {total['acs']:>12.4g} {total['macs']:>12.4g} "
        f"{total['neuron_updates']:>10.4g} {'':>12} {'':>12} {total['energy_mj']:>10.4g}"
    )
    if any(layer["direct_coded"] for layer in report["layers"]):
        lines.append(
            "* direct coding: the input is the same at every step, so these MACs are counted "
            "once per sample"
        )
    paper = report["paper_style"]
    lines += [
        "ACs, MACs = exact deployed counts: each spike (MAC layers: each non-zero input) × the "
        "non-zero synapses it reaches in the folded network, from the run",
        "dense ops = every input element × every weight position of the deployed layer, per step",
        "in-rate = input spikes (MAC layers: non-zero inputs) per element per step",
        f"paper ops = paper-style count with {paper['flops_convention']} FLOPs of the layer: "
        "SOP = in-rate × T × FLOPs (AC layers), FLOPs (MAC layers, once under direct coding)",
        f"paper-style energy: {paper['energy_mj']:.4g} mJ per sample "
        f"({paper['sop']:.4g} SOP × {report['pj_per_ac']:g} pJ + {paper['mac_flops']:.4g} FLOPs × "
        f"{report['pj_per_mac']:g} pJ)",
    ]
    if report["teacher"] is not None:
        teacher = report["teacher"]
        lines.append(
            f"teacher (GCN, priced on a {teacher['hardware']} at {teacher['pj_per_mac']:g} "
            f"pJ/MAC): {teacher['macs']:.4g} MACs, {teacher['energy_mj']:.4g} mJ per sample; "
            "reduction "
            + (
                "n/a"
                if report["reduction_percent"] is None
                else f"{report['reduction_percent']:.1f}%"
            )
        )
    published = report["published"]
    lines.append(
        "published, not measured here: MK-SGN "
        f"{published['mk_sgn_ntu60_mj']:g} mJ per sample (NTU60, paper-style); "
        + "; ".join(
            f"{gcn['model']} {gcn['gflops_per_stream']:g} GFLOPs × {gcn['streams']} streams = "
            f"{gcn['energy_mj']:.3g} mJ"
            for gcn in published["gcns"]
        )
    )
    simulated = report["simulated"]
    lines.append(
        f"simulated on {simulated['backend']}: {simulated['wall_s_per_sample']:.3g} s/sample, "
        f"{simulated['steps_per_sample']} steps/sample"
    )
    return "\n".join(lines)
