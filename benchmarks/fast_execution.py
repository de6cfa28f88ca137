"""Samples/s of the snnTorch reference, Lava (float and fixed point, one network with samples
streamed: Lava's default) and the LavaPlan emulator (loihi-emu, loihi-emu-float) at batch sizes
1, 8 and 32, on MK-SGNs fed with the synthetic skeleton set: an untrained one of the tiny and
the paper preset, and (with --trained) a trained one, whose layers fire as a real model's do;
with the ratios to Lava, the peak resident memory of each run, the emulator's arithmetic rate
beside a plain float32 matrix product of the same size on this CPU (the roofline), and the
paper preset's rate with one shard per core, projected to NTU60's 16,487 test samples.

Every measurement runs in its own fresh process (so its peak RSS is its own; Lava's adds the
Lava session's). Per-sample times are the steady-state run time (the one-time build and
quantisation are given separately). Run: .venv/bin/python -m mksgn.benchmarks.fast_execution
[--samples N] [--lava-samples N] [--paper-samples N] [--paper-shard-samples N]
[--trained MODEL.nir --trained-data DATA.npz]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np

BATCH_SIZES = (1, 8, 32)
CLASSES = 8
NTU60_XSUB_TEST = 16_487
CORES = 2
EMULATORS = ("loihi-emu", "loihi-emu-float")
LAVA = {"loihi-emu": "lava-fixed", "loihi-emu-float": "lava-float"}


def prepare(preset: str, folder: Path, samples: int) -> tuple[Path, Path]:
    """An untrained MK-SGN of the preset exported to NIR, and the synthetic test split encoded
    for it as an .npy of `samples` samples."""
    import nir
    import torch

    from mksgn.convert.nir_export import student_to_nir
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
    return graph_file, encode(graph_file, data, folder / f"{preset}-inputs.npy", samples)


def encode(graph_file: Path, data: Path, out: Path, samples: int) -> Path:
    """The test split of `data` encoded for the graph, `samples` samples, saved as .npy."""
    from mksgn.convert.nir_io import read_nir
    from mksgn.targets.inputs import data_inputs

    inputs, _ = data_inputs(data, read_nir(graph_file), graph_file, samples)
    if len(inputs) < samples:
        raise SystemExit(f"the test split of {data} has only {len(inputs)} samples")
    np.save(out, np.asarray(inputs))
    return out


def measure(
    graph_file: str, input_file: str, backend: str, batch_size: int, samples: int, threads: int
) -> dict:
    """In a fresh process: run `samples` samples on a backend; wall time, steady-state time per
    sample, one-time build, peak RSS and the fraction of spikes in the recorded layers."""
    import torch

    from mksgn.benchmarks.support.process_probes import memory_status
    from mksgn.convert.lava_graph import build_plan
    from mksgn.convert.nir_io import read_nir
    from mksgn.targets.simulate import make_target

    torch.set_num_threads(threads)
    graph = read_nir(graph_file)
    inputs = np.load(input_file)[:samples]
    target = make_target(backend, batch_size=batch_size)
    started = time.perf_counter()
    if backend == "snntorch":
        result = target.run(graph, inputs)
    else:
        # Lowering the graph is part of every Lava-plan backend's run.
        result = target.run_plan(build_plan(graph), inputs)
    wall = time.perf_counter() - started
    # VmHWM: unlike ru_maxrss, it does not carry the parent's memory over fork and exec.
    rss_mb = memory_status("VmHWM") / 2**20
    if backend.startswith("lava"):
        from mksgn.targets.lava import PEAK_RSS

        rss_mb += PEAK_RSS["bytes"] / 2**20
    per_sample = result.extra.get("run_s_per_sample", wall / samples)
    return dict(
        wall_s=wall,
        samples=samples,
        run_s_per_sample=per_sample,
        build_s=wall - per_sample * samples,
        peak_rss_mb=rss_mb,
    )


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


def run_shards(graph_file: Path, input_file: Path, backend: str, samples: int) -> dict:
    """One process per core, each with one thread, each running `samples` samples at the
    default batch size, all at once: the machine's rate, as `mksgn simulate --shard` gets it."""
    from concurrent.futures import ProcessPoolExecutor

    from mksgn.targets.emulator import DEFAULT_BATCH_SIZE

    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    with ProcessPoolExecutor(CORES, mp_context=context) as pool:
        args = (str(graph_file), str(input_file), backend, DEFAULT_BATCH_SIZE, samples, 1)
        parts = [pool.submit(measure, *args) for _ in range(CORES)]
        results = [part.result() for part in parts]
    wall = time.perf_counter() - started
    steady = max(r["run_s_per_sample"] for r in results)  # the slower shard sets the pace
    total = CORES * samples
    return dict(
        shards=CORES,
        samples=total,
        wall_s=wall,
        samples_per_s=CORES / steady,
        projected_ntu60_min=NTU60_XSUB_TEST * steady / CORES / 60,
        peak_rss_mb=max(r["peak_rss_mb"] for r in results),
    )


def plan_macs(graph_file: Path, steps: int) -> tuple[float, float]:
    """(multiply-accumulates per sample if every synapse multiplied every one of its T steps,
    the same for the largest synapse) of the graph's plan, counted as dense products."""
    from mksgn.convert.lava_graph import build_plan
    from mksgn.convert.nir_io import read_nir

    plan = build_plan(read_nir(graph_file))
    per_synapse = []
    for syn in plan.synapses:
        outputs = int(np.prod(plan.populations[syn.target].lava_shape))
        if syn.kind == "dense":
            per_synapse.append(syn.weight.size * steps)
        else:
            taps = int(np.prod(syn.weight.shape[1:]))  # kw · kh · C_in/groups
            per_synapse.append(outputs * taps * steps)
    return float(sum(per_synapse)), float(max(per_synapse))


def matmul_gflops(rows: int = 3200, inner: int = 1600, columns: int = 2048) -> float:
    """What this CPU does on a plain float32 matrix product (the largest emulator product of the
    tiny MK-SGN at batch 32): GFLOP/s, best of 5, all cores."""
    import torch

    a, b = torch.randn(rows, inner), torch.randn(inner, columns)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * rows * inner * columns / best / 1e9


def print_table(rows: list[dict]) -> None:
    """The rows with their ratios to Lava (same model, same arithmetic)."""
    print()
    print(
        f"{'model':8} {'backend':16} {'batch':>5} {'samples/s':>10} {'× Lava':>8} {'build s':>8} "
        f"{'peak MB':>8}"
    )
    for row in rows:
        if "error" in row:
            print(f"{row['model']:8} {row['backend']:16} {row['batch_size']:>5} {row['error']}")
            continue
        same = {
            r["backend"]: r for r in rows if r["model"] == row["model"] and "samples_per_s" in r
        }
        lava = same.get(LAVA.get(row["backend"], row["backend"]))
        ratio = f"{row['samples_per_s'] / lava['samples_per_s']:.1f}" if lava else "-"
        print(
            f"{row['model']:8} {row['backend']:16} {row['batch_size']:>5} "
            f"{row['samples_per_s']:>10.3g} {ratio:>8} {row['build_s']:>8.1f} "
            f"{row['peak_rss_mb']:>8.0f}"
        )


def main() -> None:
    """Print one JSON line per measurement, then a table with the ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=64, help="emulator/reference, tiny")
    parser.add_argument("--lava-samples", type=int, default=8, help="Lava, tiny and trained")
    parser.add_argument("--paper-samples", type=int, default=16, help="emulator, paper")
    parser.add_argument(
        "--paper-shard-samples", type=int, default=64, help="per shard, paper, one per core"
    )
    parser.add_argument("--trained", type=Path, help="a trained MK-SGN's NIR file")
    parser.add_argument("--trained-data", type=Path, help="its dataset (.npz)")
    args = parser.parse_args()
    rows: list[dict] = []
    macs: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="mksgn-fast-") as tmp:
        models = []
        for preset, samples in (("tiny", args.samples), ("paper", args.paper_samples)):
            count = max(samples, args.paper_shard_samples if preset == "paper" else 0)
            models.append((preset, *prepare(preset, Path(tmp), count), samples))
        if args.trained:
            inputs = encode(
                args.trained, args.trained_data, Path(tmp) / "trained.npy", args.samples
            )
            models.append(("trained", args.trained, inputs, args.samples))
        for model, graph_file, input_file, samples in models:
            runs = [("snntorch", 1, min(samples, 16))]
            if model != "paper":  # Lava on the paper preset: 654 s for one sample, 14 GiB
                runs += [(LAVA[e], 1, args.lava_samples) for e in EMULATORS]
            runs += [(backend, size, samples) for backend in EMULATORS for size in BATCH_SIZES]
            steps = int(np.load(input_file, mmap_mode="r").shape[1])
            for backend, size, count in runs:
                if model == "paper" and size == 1 and backend != "snntorch":
                    continue  # a sample per product leaves the paper preset's cores idle
                result = run_fresh(str(graph_file), str(input_file), backend, size, count, CORES)
                row = dict(model=model, backend=backend, batch_size=size, **result)
                if "run_s_per_sample" in row:
                    row["samples_per_s"] = 1 / row["run_s_per_sample"]
                rows.append(row)
                print(json.dumps(row), flush=True)
            macs[model], largest = plan_macs(graph_file, steps)
            print(json.dumps(dict(model=model, dense_macs_per_sample=macs[model], largest=largest)))
        gflops = matmul_gflops()
        print(json.dumps(dict(float32_matmul_gflops=gflops)))
        paper = next(m for m in models if m[0] == "paper")
        for backend in EMULATORS:
            shard = run_shards(paper[1], paper[2], backend, args.paper_shard_samples)
            print(json.dumps(dict(model="paper", backend=backend, **shard)), flush=True)
    print_table(rows)
    print(f"\nfloat32 matrix product on this CPU: {gflops:.1f} GFLOP/s")
    for model in macs:
        for row in rows:
            if row["model"] == model and row["backend"] in EMULATORS and "samples_per_s" in row:
                rate = 2 * macs[model] * row["samples_per_s"] / 1e9
                print(
                    f"{model:8} {row['backend']:16} batch {row['batch_size']:>2}: "
                    f"{rate:6.1f} GFLOP/s of dense-equivalent products ({rate / gflops:.0%})"
                )


if __name__ == "__main__":
    main()
