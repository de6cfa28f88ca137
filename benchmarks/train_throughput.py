"""Training throughput (samples/s) of every model on the CPU
(`python -m mksgn.benchmarks.train_throughput`).

One training step = forward, cross-entropy, backward, AdamW step, on random joints shaped like
the preset's input (batch 16, 2 bodies). The first step is a warm-up and is not timed.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.nn import functional as F

from mksgn.train.models import build_model, preset_config
from mksgn.train.models.config import MODEL_NAMES, PRESET_NAMES
from mksgn.train.models.cost import parameter_count

NUM_CLASSES = 60  # NTU RGB+D 60


def measure(model_name: str, preset: str, batch_size: int, iterations: int) -> dict[str, float]:
    """Samples per second of `iterations` timed training steps of one model and preset."""
    torch.manual_seed(0)
    config = preset_config(model_name, preset, NUM_CLASSES)
    model = build_model(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    inputs = torch.randn(batch_size, 3, config.frames, config.joints, config.bodies)
    labels = torch.randint(0, NUM_CLASSES, (batch_size,))

    def step() -> None:
        loss = F.cross_entropy(model(inputs).logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up: allocator and kernel selection
    started = time.perf_counter()
    for _ in range(iterations):
        step()
    seconds = time.perf_counter() - started
    return {
        "model": model_name,
        "preset": preset,
        "frames": config.frames,
        "time_steps": config.time_steps if model_name != "gcn" else 0,
        "parameters": parameter_count(model),
        "samples_per_second": batch_size * iterations / seconds,
        "seconds_per_step": seconds / iterations,
    }


def main() -> None:
    """Measure each model with the tiny and paper presets and print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=3, help="timed steps per model")
    parser.add_argument("--presets", nargs="+", default=list(PRESET_NAMES), choices=PRESET_NAMES)
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [
        measure(model, preset, args.batch_size, args.iterations)
        for preset in args.presets
        for model in args.models
    ]
    if args.json:
        print(json.dumps({"threads": torch.get_num_threads(), "results": rows}, indent=2))
        return
    print(
        f"training throughput on CPU ({torch.get_num_threads()} threads, batch {args.batch_size})"
    )
    print(
        f"{'model':<10} {'preset':<6} {'frames':>6} {'T':>2} {'params':>9} {'samples/s':>10} {'s/step':>8}"
    )
    for row in rows:
        print(
            f"{row['model']:<10} {row['preset']:<6} {row['frames']:>6} {row['time_steps']:>2} "
            f"{row['parameters']:>9} {row['samples_per_second']:>10.1f} {row['seconds_per_step']:>8.2f}"
        )


if __name__ == "__main__":
    main()
