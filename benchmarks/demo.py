"""`mksgn demo`: the pipeline on the built-in synthetic data, one line per stage.

synthetic data -> GCN teacher -> MK-SGN distilled from it -> NIR (+ teacher ONNX) -> Lava artifact
-> the same test samples on the snnTorch reference and on Lava (float) -> spike parity and energy
counted from each backend's spikes -> summary.json. (`mksgn report` and the fixed-point run are
still to come: issue 5.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mksgn.atomic import atomic_open


@dataclass(frozen=True)
class DemoSize:
    """How big the demo's data, models, training and simulation are."""

    classes: int
    samples_per_class: int
    frames: int  # of the synthetic clips
    model_frames: int  # after test-time resampling, as the models see them
    teacher_epochs: int
    student_epochs: int
    lava_samples: int  # test samples simulated on both backends


QUICK = DemoSize(4, 30, 32, 16, 40, 40, 2)
FULL = DemoSize(8, 40, 64, 32, 30, 30, 6)


def run_demo(out: Path, size: DemoSize, echo: Callable[[str], None]) -> dict[str, object]:
    """Run every stage into `out`; return (and write to out/summary.json) the summary."""
    from mksgn.benchmarks.counting import count_operations, required_records, teacher_macs
    from mksgn.benchmarks.energy import DEFAULT_PRESET, PRESETS, build_report
    from mksgn.convert.export import export_checkpoint
    from mksgn.convert.lava_artifact import convert_nir
    from mksgn.convert.nir_io import read_nir
    from mksgn.targets.inputs import data_inputs
    from mksgn.targets.simulate import make_target
    from mksgn.train.data import synthetic
    from mksgn.train.evaluate import evaluate_checkpoint
    from mksgn.train.loop import TrainSettings, config_for_data, train

    stages = 7
    started = time.perf_counter()

    def stage(number: int, text: str) -> None:
        echo(f"[{number}/{stages}] {text} ({time.perf_counter() - started:.0f} s)")

    out.mkdir(parents=True, exist_ok=True)
    data = out / "synthetic.npz"
    dataset = synthetic.generate(size.classes, size.samples_per_class, size.frames, seed=0)
    synthetic.write_npz(dataset, data)
    stage(1, f"synthetic skeleton set: {len(dataset.labels)} samples -> {data}")

    runs = {}
    for model, epochs, teacher in (
        ("gcn", size.teacher_epochs, None),
        ("mk-sgn", size.student_epochs, out / "gcn" / "checkpoint.pt"),
    ):
        config = config_for_data(data, model, "tiny", frames=size.model_frames)
        run_dir = out / model
        train(data, config, TrainSettings(epochs=epochs), run_dir, teacher, progress=False)
        runs[model] = evaluate_checkpoint(run_dir / "checkpoint.pt", data, progress=False)
        stage(
            2 if model == "gcn" else 3,
            f"{model} trained {epochs} epochs"
            + (" with the GCN teacher" if teacher else "")
            + f": test top-1 {runs[model].top1:.3f}",
        )

    student_nir, teacher_onnx = out / "mk-sgn.nir", out / "gcn.onnx"
    export_checkpoint(out / "mk-sgn" / "checkpoint.pt", nir_path=student_nir)
    export_checkpoint(out / "gcn" / "checkpoint.pt", onnx_path=teacher_onnx)
    stage(4, f"exported {student_nir.name} (NIR) and {teacher_onnx.name} (ONNX, checked)")

    manifest = convert_nir(student_nir, out / "lava")
    stage(5, f"Lava process graph: pipeline depth {manifest['pipeline_depth']} -> {out / 'lava'}")

    graph = read_nir(student_nir)
    inputs, _ = data_inputs(data, graph, student_nir, size.lava_samples)
    record = required_records(graph)
    results = {
        backend: make_target(backend).run(graph, inputs, record)
        for backend in ("snntorch", "lava-float")
    }
    reference, lava = results["snntorch"], results["lava-float"]
    parity = {
        node: float(np.mean(reference.recorded[node] == lava.recorded[node]))
        for node in record
        if node in lava.recorded
    }
    identical = all(agreement == 1.0 for agreement in parity.values())
    stage(
        6,
        f"{len(inputs)} test samples on snntorch and lava-float: "
        + ("spike for spike identical on every layer" if identical else "spikes DIFFER")
        + f" (Lava {lava.wall_s_per_sample:.1f} s/sample)",
    )

    macs = teacher_macs(out / "gcn" / "checkpoint.pt")
    energy = {
        backend: build_report(
            count_operations(graph, inputs, result.recorded),
            PRESETS[DEFAULT_PRESET],
            backend,
            result.wall_s_per_sample,
            result.steps_per_sample,
            macs,
        )
        for backend, result in results.items()
    }
    stage(7, "energy counted from each backend's spikes")

    summary = {
        "size": asdict(size),
        "accuracy": {model: result.top1 for model, result in runs.items()},
        "lava_samples": len(inputs),
        "parity_identical": identical,
        "parity_per_layer": parity,
        "energy_mj_per_sample": {b: r["per_sample"]["energy_mj"] for b, r in energy.items()},
        "teacher_energy_mj_per_sample": energy["snntorch"]["teacher"]["energy_mj"],
        "reduction_percent": {b: r["reduction_percent"] for b, r in energy.items()},
        "energy": energy,
        "seconds": time.perf_counter() - started,
    }
    with atomic_open(out / "summary.json") as handle:
        json.dump(summary, handle, indent=2)
        handle.write("\n")
    for line in summary_table(summary):
        echo(line)
    return summary


def summary_table(summary: dict) -> list[str]:
    """The demo's closing table."""
    energy = summary["energy_mj_per_sample"]
    reduction = summary["reduction_percent"]
    return [
        "",
        f"{'':34}{'snntorch':>12}{'lava-float':>12}",
        f"{'GCN teacher test top-1':34}{summary['accuracy']['gcn']:>12.3f}",
        f"{'MK-SGN test top-1':34}{summary['accuracy']['mk-sgn']:>12.3f}",
        f"{'spike parity (all layers)':34}{'':>12}"
        f"{'identical' if summary['parity_identical'] else 'differs':>12}",
        f"{'MK-SGN energy per sample (mJ)':34}{energy['snntorch']:>12.4f}"
        f"{energy['lava-float']:>12.4f}",
        f"{'GCN teacher energy per sample (mJ)':34}{summary['teacher_energy_mj_per_sample']:>12.4f}",
        f"{'energy reduction (%)':34}{reduction['snntorch']:>12.1f}{reduction['lava-float']:>12.1f}",
        f"whole demo: {summary['seconds']:.0f} s",
    ]
