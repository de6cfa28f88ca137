"""`mksgn demo`: the pipeline on the built-in synthetic data, one line per stage.

synthetic data -> GCN teacher -> Base-SGN (joint modality) and an MK-SGN distilled from the teacher
-> NIR (+ teacher ONNX) -> Lava artifact -> the same test samples on the snnTorch reference, Lava
float and Lava fixed point (spikes saved as spikes-<backend>.npz) -> spike parity, fixed-point
agreement and energy counted from each backend's spikes -> summary.json -> `mksgn report` into
report/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mksgn import run_files
from mksgn.atomic import atomic_open

MODELS = ("gcn", "base-sgn", "mk-sgn")
BACKENDS = ("snntorch", "lava-float", "lava-fixed")
REPORT_DIR = "report"


@dataclass(frozen=True)
class DemoSize:
    """How big the demo's data, models, training and simulation are."""

    classes: int
    samples_per_class: int
    frames: int  # of the synthetic clips
    model_frames: int  # after test-time resampling, as the models see them
    teacher_epochs: int
    student_epochs: int  # Base-SGN and MK-SGN alike
    lava_samples: int  # test samples simulated on every backend


QUICK = DemoSize(4, 30, 32, 12, 40, 40, 8)
FULL = DemoSize(8, 40, 64, 32, 30, 30, 6)


def spikes_file(out: Path, backend: str) -> Path:
    """Where the demo keeps a backend's recorded spikes (what `mksgn simulate --out` writes)."""
    return out / f"spikes-{backend}.npz"


def agreement(first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> dict[str, float]:
    """Per recorded node, the fraction of (sample, step, neuron) entries equal in both runs:
    spikes exactly; graded values (the readout) within a relative 1e-4, since the two sum in
    different orders."""
    fractions = {}
    for node in first:
        if node not in second:
            continue
        a, b = first[node], second[node]
        if np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all():
            fractions[node] = float(np.mean(a == b))
        else:
            scale = float(np.abs(a).max(initial=0.0))
            fractions[node] = float(np.mean(np.isclose(a, b, rtol=1e-4, atol=1e-5 * scale)))
    return fractions


def run_demo(out: Path, size: DemoSize, echo: Callable[[str], None]) -> dict[str, object]:
    """Run every stage into `out`; return (and write to out/summary.json) the summary."""
    from mksgn.benchmarks.counting import count_operations, required_records
    from mksgn.benchmarks.energy import build_report
    from mksgn.benchmarks.prices import DEFAULT_PRESET, PRESETS
    from mksgn.benchmarks.report import write_report
    from mksgn.benchmarks.teacher_macs import onnx_macs_per_layer
    from mksgn.convert.artifact import convert_nir
    from mksgn.convert.export import export_checkpoint
    from mksgn.convert.nir_io import read_nir
    from mksgn.targets.inputs import calibration_range, data_inputs
    from mksgn.targets.simulate import simulate
    from mksgn.train.data import synthetic
    from mksgn.train.evaluate import evaluate_checkpoint
    from mksgn.train.settings import TrainSettings, config_for_data
    from mksgn.train.training import train

    stages = 10
    started = time.perf_counter()
    stage_seconds: dict[str, float] = {}
    last = [started]

    def stage(number: int, key: str, text: str) -> None:
        now = time.perf_counter()
        stage_seconds[key] = now - last[0]
        last[0] = now
        echo(f"[{number}/{stages}] {text} ({now - started:.0f} s)")

    out.mkdir(parents=True, exist_ok=True)
    data = out / "synthetic.npz"
    dataset = synthetic.generate(size.classes, size.samples_per_class, size.frames, seed=0)
    synthetic.write_npz(dataset, data)
    stage(1, "data", f"synthetic skeleton set: {len(dataset.labels)} samples -> {data}")

    runs = {}
    for number, model, epochs, teacher, how in (
        (2, "gcn", size.teacher_epochs, None, ""),
        (3, "base-sgn", size.student_epochs, None, " (joint modality, no teacher)"),
        (
            4,
            "mk-sgn",
            size.student_epochs,
            out / "gcn" / run_files.CHECKPOINT,
            " with the GCN teacher",
        ),
    ):
        config = config_for_data(data, model, "tiny", frames=size.model_frames)
        run_dir = out / model
        train(data, config, TrainSettings(epochs=epochs), run_dir, teacher, progress=False)
        runs[model] = evaluate_checkpoint(run_dir / run_files.CHECKPOINT, data, progress=False)
        stage(
            number,
            model,
            f"{model} trained {epochs} epochs{how}: test top-1 {runs[model].top1:.3f}",
        )

    student_nir, teacher_onnx = out / "mk-sgn.nir", out / "gcn.onnx"
    export_checkpoint(out / "mk-sgn" / run_files.CHECKPOINT, nir_path=student_nir)
    export_checkpoint(out / "gcn" / run_files.CHECKPOINT, onnx_path=teacher_onnx)
    stage(5, "export", f"exported {student_nir.name} (NIR) and {teacher_onnx.name} (ONNX, checked)")

    # The demo's own folders: float, and fixed point quantised once for the train split's range.
    manifest = convert_nir(student_nir, out / "lava", force=True)
    convert_nir(
        student_nir,
        out / "lava-fixed",
        fixed_point=True,
        force=True,
        input_abs_max=calibration_range(student_nir, data),
        calibration=str(data),
    )
    stage(
        6,
        "lava-artifact",
        f"Lava process graph: pipeline depth {manifest['pipeline_depth']} -> {out / 'lava'}, "
        f"fixed point -> {out / 'lava-fixed'}",
    )

    graph = read_nir(student_nir)
    inputs, labels = data_inputs(data, graph, student_nir, size.lava_samples)
    record = required_records(graph)

    def run_on(backend: str):
        folders = {"lava-float": out / "lava", "lava-fixed": out / "lava-fixed"}
        return simulate(
            folders.get(backend, student_nir),
            backend,
            data_path=data,
            samples=size.lava_samples,
            record=record,
            out=spikes_file(out, backend),
        )

    runs_by_backend = {backend: run_on(backend) for backend in ("snntorch", "lava-float")}
    reference, lava = (runs_by_backend[b].result for b in ("snntorch", "lava-float"))
    parity = agreement(reference.recorded, lava.recorded)
    identical = all(value == 1.0 for value in parity.values())
    stage(
        7,
        "snntorch+lava-float",
        f"{len(inputs)} test samples on snntorch and lava-float: "
        + ("spike for spike identical on every layer" if identical else "spikes DIFFER")
        + f" (Lava {lava.wall_s_per_sample:.1f} s/sample)",
    )

    runs_by_backend["lava-fixed"] = run_on("lava-fixed")
    fixed = runs_by_backend["lava-fixed"].result
    fixed_agreement = agreement(lava.recorded, fixed.recorded)
    spiking = [node for node in fixed_agreement if node in record]
    mean_agreement = float(np.mean([fixed_agreement[node] for node in spiking]))
    stage(
        8,
        "lava-fixed",
        f"lava-fixed on the same samples: {100 * mean_agreement:.1f} % of spikes as in lava-float"
        f" (mean over layers; {fixed.wall_s_per_sample:.1f} s/sample)",
    )

    teacher_layers = onnx_macs_per_layer(teacher_onnx)
    macs = float(sum(teacher_layers.values()))  # = teacher_macs(teacher_onnx), one ONNX pass
    energy = {
        backend: build_report(
            count_operations(graph, inputs, run.result.recorded),
            PRESETS[DEFAULT_PRESET],
            backend,
            run.result.wall_s_per_sample,
            run.result.steps_per_sample,
            macs,
        )
        for backend, run in runs_by_backend.items()
    }
    stage(9, "energy", "energy counted from each backend's spikes")

    def accuracy(backend: str) -> float:
        return float(np.mean(runs_by_backend[backend].predictions == labels))

    summary = {
        "size": asdict(size),
        "accuracy": {model: result.top1 for model, result in runs.items()},
        "evaluation": {model: result.to_dict() for model, result in runs.items()},
        "lava_samples": len(inputs),
        "lava_labels": [int(label) for label in labels],
        "backends": {
            backend: {
                "accuracy": accuracy(backend),
                "predictions": run.predictions.tolist(),
                "wall_s_per_sample": run.result.wall_s_per_sample,
                "steps_per_sample": run.result.steps_per_sample,
                "spikes_file": spikes_file(out, backend).name,
            }
            for backend, run in runs_by_backend.items()
        },
        "parity_identical": identical,
        "parity_per_layer": parity,
        "fixed_point": {
            "agreement_per_layer": {node: fixed_agreement[node] for node in spiking},
            "mean_agreement": mean_agreement,
            "prediction_agreement": float(
                np.mean(
                    runs_by_backend["lava-fixed"].predictions
                    == runs_by_backend["lava-float"].predictions
                )
            ),
            "quantisation": fixed.extra.get("quantisation"),
        },
        "energy_mj_per_sample": {b: r["per_sample"]["energy_mj"] for b, r in energy.items()},
        "teacher_energy_mj_per_sample": energy["snntorch"]["teacher"]["energy_mj"],
        "teacher_macs_per_layer": teacher_layers,
        "reduction_percent": {b: r["reduction_percent"] for b, r in energy.items()},
        "energy": energy,
        "stage_seconds": stage_seconds,
        "seconds": time.perf_counter() - started,
    }
    write_summary(out, summary)

    write_report(out, out / REPORT_DIR)
    stage(10, "report", f"report.md, report.json and plots -> {out / REPORT_DIR}")
    summary["seconds"] = time.perf_counter() - started
    write_summary(out, summary)
    for line in summary_table(summary):
        echo(line)
    return summary


def write_summary(out: Path, summary: dict) -> None:
    """out/summary.json (numpy scalars in the quantisation report become plain numbers)."""
    with atomic_open(out / "summary.json") as handle:
        json.dump(summary, handle, indent=2, default=float)
        handle.write("\n")


def summary_table(summary: dict) -> list[str]:
    """The demo's closing table: accuracy per model, then one column per backend."""
    backends = [b for b in BACKENDS if b in summary["energy_mj_per_sample"]]
    energy = summary["energy_mj_per_sample"]
    reduction = summary["reduction_percent"]
    fixed = summary["fixed_point"]
    width = 38

    def row(label: str, values: dict[str, str]) -> str:
        return f"{label:{width}}" + "".join(f"{values.get(b, ''):>12}" for b in backends)

    accuracy = summary["accuracy"]
    samples = summary["lava_samples"]
    return [
        "",
        f"{'test top-1 (whole test split)':{width}}"
        + "".join(f"{name:>12}" for name in ("GCN teacher", "Base-SGN", "MK-SGN")),
        f"{'':{width}}" + "".join(f"{accuracy[m]:>12.3f}" for m in ("gcn", "base-sgn", "mk-sgn")),
        "",
        row("MK-SGN", {b: b for b in backends}),
        row(
            f"top-1 on the {samples} simulated samples",
            {b: f"{summary['backends'][b]['accuracy']:.3f}" for b in backends},
        ),
        row(
            "spikes vs snntorch (all layers)",
            {"lava-float": "identical" if summary["parity_identical"] else "differs"},
        ),
        row(
            "spikes vs lava-float (mean of layers)",
            {"lava-fixed": f"{100 * fixed['mean_agreement']:.1f} %"},
        ),
        row(
            "seconds per sample",
            {b: f"{summary['backends'][b]['wall_s_per_sample']:.2f}" for b in backends},
        ),
        row("energy per sample (mJ)", {b: f"{energy[b]:.4f}" for b in backends}),
        row(
            "GCN teacher energy per sample (mJ)",
            {backends[0]: f"{summary['teacher_energy_mj_per_sample']:.4f}"},
        ),
        row("energy reduction (%)", {b: f"{reduction[b]:.1f}" for b in backends}),
        f"whole demo: {summary['seconds']:.0f} s",
    ]
