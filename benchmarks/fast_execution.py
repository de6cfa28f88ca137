"""Samples/s of the snnTorch reference, naive Lava (lava-float, a new Lava network per sample),
batched Lava (one network, samples side by side in blocks of 1, 8 and 32, groups of them streamed
one after the other) and the LavaPlan emulator (loihi-emu, loihi-emu-float) at batch sizes 1, 8
and 32, on an untrained MK-SGN (tiny and paper presets) fed with the synthetic skeleton set; with
the ratios to naive Lava and to the reference, and the peak resident memory of each run.

Every measurement runs in its own fresh process (so its peak RSS is its own; Lava's adds the
Lava session's). Run: .venv/bin/python -m mksgn.benchmarks.fast_execution [--samples N]
[--lava-samples N] [--lava-batched-samples N] [--paper-samples N] [--lava-paper]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

BATCH_SIZES = (1, 8, 32)
NAIVE = " naive"
CLASSES = 8


def prepare(preset: str, folder: Path, samples: int) -> tuple[Path, Path]:
    """An untrained MK-SGN of the preset exported to NIR, and the synthetic test split encoded
    for it as an .npy of `samples` samples."""
    import nir
    import torch

    from mksgn.convert.nir_export import student_to_nir
    from mksgn.convert.nir_io import read_nir
    from mksgn.targets.inputs import data_inputs
    from mksgn.train.data.synthetic import generate, write_npz
    from mksgn.train.models import build_model, preset_config

    data = folder / "synth.npz"
    if not data.exists():
        per_class = max(4, 2 * (samples // CLASSES + 1))
        write_npz(generate(classes=CLASSES, samples_per_class=per_class, frames=64), data)
    torch.manual_seed(0)
    model = build_model(preset_config("mk-sgn", preset, num_classes=CLASSES)).eval()
    graph_file = folder / f"{preset}.nir"
    nir.write(graph_file, student_to_nir(model))
    graph = read_nir(graph_file)
    inputs, _ = data_inputs(data, graph, graph_file, samples)
    if len(inputs) < samples:
        raise SystemExit(f"the synthetic test split has only {len(inputs)} samples")
    input_file = folder / f"{preset}-inputs.npy"
    np.save(input_file, inputs)
    return graph_file, input_file


def measure(graph_file: str, input_file: str, backend: str, batch_size: int, samples: int) -> dict:
    """In a fresh process: run `samples` samples on a backend ("lava-float naive": lava-float, a
    network per sample); wall time and peak RSS."""
    from mksgn.convert.lava_graph import build_plan
    from mksgn.convert.nir_io import read_nir
    from mksgn.targets.simulate import make_target

    graph = read_nir(graph_file)
    inputs = np.load(input_file)[:samples]
    naive = backend.endswith(NAIVE)
    target = make_target(backend.removesuffix(NAIVE), batch_size=batch_size)
    started = time.perf_counter()
    if backend == "snntorch":
        target.run(graph, inputs)
    elif naive:
        for sample in range(samples):
            target.run_plan(build_plan(graph), inputs[sample : sample + 1])
    else:
        # Lowering the graph is part of every Lava-plan backend's run.
        target.run_plan(build_plan(graph), inputs)
    wall = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if backend.startswith("lava"):
        from mksgn.targets.lava import PEAK_RSS

        rss_mb += PEAK_RSS["bytes"] / 2**20
    return dict(wall_s=wall, samples=samples, peak_rss_mb=rss_mb)


def run_fresh(*args: object) -> dict:
    """`measure` in a new interpreter (spawn), so each run's memory peak is its own."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        try:
            return pool.submit(measure, *args).result()
        except BrokenProcessPool:
            return dict(error="the measuring process died (out of memory?)")


def emulator_memory_mb(graph_file: Path, steps: int, batch_size: int = max(BATCH_SIZES)) -> float:
    """What the emulator holds at `batch_size` for T = `steps` (targets/memory.py's estimate)."""
    from mksgn.convert.lava_graph import build_plan
    from mksgn.convert.nir_io import read_nir
    from mksgn.targets.memory import emulator_bytes

    plan = build_plan(read_nir(graph_file))
    fixed, per_sample = emulator_bytes(plan, steps + plan.depth)
    return (fixed + per_sample * batch_size) / 2**20


def lava_build_mb(graph_file: Path) -> float:
    """What Lava's float build of one sample's network holds (times the samples side by side)."""
    from mksgn.convert.lava_graph import build_plan
    from mksgn.convert.nir_io import read_nir
    from mksgn.targets.memory import lava_bytes

    return lava_bytes(build_plan(read_nir(graph_file)), 1, False)[1] / 2**20


def available_mb() -> float:
    """MemAvailable of this machine."""
    from mksgn.targets.memory import available_bytes

    return (available_bytes() or 0) / 2**20


def main() -> None:
    """Print one JSON line per measurement, then a table with the ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=64, help="emulator/reference, tiny")
    parser.add_argument("--lava-samples", type=int, default=2, help="naive Lava, tiny")
    parser.add_argument(
        "--lava-batched-samples", type=int, default=32, help="batched Lava (at least the batch)"
    )
    parser.add_argument("--paper-samples", type=int, default=8, help="emulator/reference, paper")
    parser.add_argument("--lava-paper", action="store_true", help="also run Lava on paper")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mksgn-fast-") as tmp:
        for preset, samples in (("tiny", args.samples), ("paper", args.paper_samples)):
            with_lava = preset == "tiny" or args.lava_paper
            lava_samples = args.lava_samples if with_lava else 0
            batched = args.lava_batched_samples if with_lava else 0
            graph_file, input_file = prepare(preset, Path(tmp), max(samples, batched))
            runs = [("snntorch", 1, samples)]
            if with_lava:
                runs.append(("lava-float" + NAIVE, 1, lava_samples))
                runs += [("lava-float", size, max(size, batched)) for size in BATCH_SIZES]
            runs += [
                (backend, size, samples)
                for backend in ("loihi-emu", "loihi-emu-float")
                for size in BATCH_SIZES
            ]
            free, emulator_mb = (
                available_mb(),
                emulator_memory_mb(graph_file, np.load(input_file, mmap_mode="r").shape[1]),
            )
            lava_mb = lava_build_mb(graph_file) if with_lava else 0.0
            for backend, size, count in runs:
                if backend.startswith("loihi-emu"):
                    needed = emulator_mb
                elif backend.startswith("lava"):
                    needed = lava_mb * size
                else:
                    needed = 0.0  # the reference runs layer by layer
                if needed > 0.5 * free:
                    # Do not let the machine's OOM killer pick a process (maybe someone else's).
                    result = dict(error=f"needs ~{needed:.0f} MB to build, {free:.0f} MB free")
                else:
                    result = run_fresh(str(graph_file), str(input_file), backend, size, count)
                row = dict(preset=preset, backend=backend, batch_size=size, **result)
                if "wall_s" in row:
                    row["samples_per_s"] = row["samples"] / row["wall_s"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    print()
    print(
        f"{'preset':6} {'backend':16} {'batch':>5} {'samples/s':>10} {'×lava':>8} {'×ref':>7} "
        f"{'peak MB':>8}"
    )
    for row in rows:
        if "error" in row:
            print(f"{row['preset']:6} {row['backend']:16} {row['batch_size']:>5} {row['error']}")
            continue
        same = {r["backend"]: r for r in rows if r["preset"] == row["preset"] and "wall_s" in r}
        lava = same.get("lava-float" + NAIVE)
        ref = same.get("snntorch")
        vs_lava = f"{row['samples_per_s'] / lava['samples_per_s']:.1f}" if lava else "-"
        vs_ref = f"{row['samples_per_s'] / ref['samples_per_s']:.2f}" if ref else "-"
        print(
            f"{row['preset']:6} {row['backend']:16} {row['batch_size']:>5} "
            f"{row['samples_per_s']:>10.3g} {vs_lava:>8} {vs_ref:>7} {row['peak_rss_mb']:>8.0f}"
        )


if __name__ == "__main__":
    main()
