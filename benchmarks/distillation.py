"""Does GCN-to-SGN distillation help? MK-SGN trained with and without the GCN teacher, same
settings, several seeds (`python -m mksgn.benchmarks.distillation [--seeds 0 1 2 3] [--jobs 2]`).

Generates the default synthetic set (8 classes, 160 train / 160 test), trains the teacher once,
then every (variant, seed) run in its own process with one torch thread. Each finished run is
appended to OUT/results.jsonl, and runs already there are not repeated, so an interrupted
benchmark continues where it stopped. Prints test top-1 per seed, mean ± standard deviation per
variant, and the difference of the means.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from mksgn import run_files

VARIANTS = ("student", "distilled")


def train_one(data: str, teacher: str | None, out: str, seed: int, epochs: int, owner: int) -> dict:
    """Train and evaluate one MK-SGN in this (worker) process; its metrics and wall time."""
    import torch

    from mksgn.lifetime import exit_when_orphaned
    from mksgn.train.evaluate import evaluate_checkpoint
    from mksgn.train.settings import TrainSettings, config_for_data
    from mksgn.train.training import train

    # A killed benchmark must not leave its training runs going. The pool worker's parent is
    # the forkserver, which outlives the benchmark: watch the benchmark's pid itself.
    exit_when_orphaned(owner)
    torch.set_num_threads(1)  # the runs share the cores; threads would only contend
    started = time.perf_counter()
    config = config_for_data(data, "mk-sgn", "tiny")
    train(data, config, TrainSettings(epochs=epochs, seed=seed), out, teacher, progress=False)
    result = evaluate_checkpoint(Path(out) / run_files.CHECKPOINT, data, progress=False)
    return {"top1": result.top1, "seconds": time.perf_counter() - started}


def summarise(results: list[dict]) -> list[str]:
    """Per-seed table, mean ± std per variant and the gain of distillation."""
    seeds = sorted({r["seed"] for r in results})
    by_key = {(r["variant"], r["seed"]): r for r in results}
    lines = [f"{'seed':>6}" + "".join(f"{v:>12}" for v in VARIANTS)]
    for seed in seeds:
        cells = [by_key.get((v, seed)) for v in VARIANTS]
        lines.append(
            f"{seed:>6}" + "".join(f"{c['top1']:>12.4f}" if c else f"{'-':>12}" for c in cells)
        )
    means = {}
    for variant in VARIANTS:
        scores = [r["top1"] for r in results if r["variant"] == variant]
        if scores:
            means[variant] = statistics.mean(scores)
            spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
            lines.append(f"{variant}: mean {means[variant]:.4f} ± {spread:.4f} over {len(scores)}")
    if len(means) == len(VARIANTS):
        gain = 100 * (means["distilled"] - means["student"])
        lines.append(f"distillation changes mean test top-1 by {gain:+.1f} points")
    return lines


def main() -> None:
    """Run the missing (variant, seed) pairs and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--teacher-epochs", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("distillation-benchmark"))
    args = parser.parse_args()

    from mksgn.benchmarks.experiments import read_results, run_logged, synthetic_with_teacher

    data, teacher = synthetic_with_teacher(args.out, teacher_epochs=args.teacher_epochs)
    log = args.out / "results.jsonl"
    done = read_results(log)
    finished = {(r["variant"], r["seed"], r["epochs"]) for r in done}
    todo = [
        (variant, seed)
        for seed in args.seeds
        for variant in VARIANTS
        if (variant, seed, args.epochs) not in finished
    ]
    calls = [
        (
            {"variant": variant, "seed": seed, "epochs": args.epochs},
            train_one,
            (
                str(data),
                str(teacher) if variant == "distilled" else None,
                str(args.out / f"{variant}-seed{seed}-e{args.epochs}"),
                seed,
                args.epochs,
                os.getpid(),
            ),
        )
        for variant, seed in todo
    ]
    run_logged(log, done, calls, args.jobs)
    results = [r for r in done if r["epochs"] == args.epochs and r["seed"] in args.seeds]
    print("\n".join(summarise(results)))


if __name__ == "__main__":
    main()
