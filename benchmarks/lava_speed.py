"""Lava CPU simulation speed, NIR file size and Lava memory for a tiny and a larger conv graph.

Run: .venv/bin/python -m mksgn.benchmarks.lava_speed [--samples N] [--steps T]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import nir
import numpy as np

from mksgn.benchmarks.support.graphs import lif
from mksgn.targets.lava import LavaTarget


def tiny_graph() -> nir.NIRGraph:
    """Input(16) -> Affine(32) -> LIF -> Affine(4) -> Output."""
    rng = np.random.default_rng(0)
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([16])),
            "fc1": nir.Affine(weight=rng.normal(0, 0.5, (32, 16)), bias=np.zeros(32)),
            "lif1": lif((32,)),
            "fc2": nir.Affine(weight=rng.normal(0, 0.5, (4, 32)), bias=np.zeros(4)),
            "output": nir.Output(output_type=np.array([4])),
        },
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "output")],
    )


def conv_graph(nodes: int = 25, channels: int = 16, frames: int = 32) -> nir.NIRGraph:
    """The student's lowering shape: 1x1 graph conv -> LIF -> grouped temporal conv -> LIF ->
    Flatten -> Affine readout, over (nodes·channels, frames)."""
    rng = np.random.default_rng(0)
    c_in, width = nodes * 3, nodes * channels
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([c_in, frames])),
            "gconv": nir.Conv1d(
                input_shape=frames,
                weight=rng.normal(0, 0.3, (width, c_in, 1)),
                stride=1,
                padding=0,
                dilation=1,
                groups=1,
                bias=np.zeros(width),
            ),
            "lif1": lif((width, frames)),
            "tconv": nir.Conv1d(
                input_shape=frames,
                weight=rng.normal(0, 0.5, (width, channels, 9)),
                stride=2,
                padding=4,
                dilation=1,
                groups=nodes,
                bias=np.zeros(width),
            ),
            "lif2": lif((width, frames // 2)),
            "flat": nir.Flatten(input_type={"input": np.array([width, frames // 2])}, start_dim=0),
            "readout": nir.Affine(
                weight=rng.normal(0, 0.1, (10, width * frames // 2)), bias=np.zeros(10)
            ),
            "output": nir.Output(output_type=np.array([10])),
        },
        edges=[
            ("input", "gconv"),
            ("gconv", "lif1"),
            ("lif1", "tconv"),
            ("tconv", "lif2"),
            ("lif2", "flat"),
            ("flat", "readout"),
            ("readout", "output"),
        ],
        type_check=False,
    )


def measure(name: str, graph: nir.NIRGraph, samples: int, steps: int, fixed: bool) -> dict:
    """Run `samples` random samples of `steps` steps and report speed and sizes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.nir"
        nir.write(path, graph)
        nir_bytes = path.stat().st_size
    shape = tuple(int(s) for s in graph.nodes["input"].input_type["input"])
    inputs = np.random.default_rng(1).uniform(0, 1, (samples, steps, *shape))
    target = LavaTarget(fixed_point=fixed, timeout_s=1800)
    started = time.perf_counter()
    result = target.run(graph, inputs)
    wall = time.perf_counter() - started
    lava_steps = samples * result.steps_per_sample
    return dict(
        graph=name,
        backend=target.name,
        samples=samples,
        time_steps=steps,
        lava_steps=lava_steps,
        wall_s=round(wall, 2),
        steps_per_s=round(lava_steps / wall, 1),
        samples_per_s=round(samples / wall, 3),
        nir_file_kb=round(nir_bytes / 1024, 1),
        lava_peak_rss_mb=round(float(result.extra["lava_peak_rss_mb"]), 1),
    )


def main() -> None:
    """Print one JSON line per (graph, backend)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    for name, graph in (("tiny", tiny_graph()), ("conv-25x16x32", conv_graph())):
        for fixed in (False, True):
            print(json.dumps(measure(name, graph, args.samples, args.steps, fixed)), flush=True)


if __name__ == "__main__":
    main()
