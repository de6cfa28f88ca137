"""Top-1 against energy per sample: Base-SGN and MK-SGN over time steps T and the SA-SGC
attention support (`python -m mksgn.benchmarks.accuracy_energy [--steps 1 2 4 8] [--jobs 2]`).

Generates the synthetic set (default: the demo's, 8 classes, 160 train / 160 test), trains the
GCN teacher once, then every (model, T, attention support, seed) run in its own process with one
torch thread; MK-SGN is distilled from the teacher. Each run is evaluated on the whole test split
and its energy per sample counted from the spikes of the snnTorch reference (spike-identical to
Lava float), 45nm-fp32, beside the teacher. Finished runs are appended to OUT/results.jsonl and
not repeated; the plot OUT/accuracy_energy.png is redrawn from all of them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

from mksgn import run_files

DENSE = "dense"  # attention over every joint
NO_ATTENTION = "-"  # Base-SGN has no attention


def run_one(data: str, teacher: str, job: dict, out: str, owner: int) -> dict:
    """Train, evaluate and count one configuration in this (worker) process."""
    import dataclasses

    import torch

    from mksgn.benchmarks.energy import energy_report
    from mksgn.lifetime import exit_when_orphaned
    from mksgn.train.evaluate import evaluate_checkpoint
    from mksgn.train.settings import TrainSettings, config_for_data
    from mksgn.train.training import train

    exit_when_orphaned(owner)
    torch.set_num_threads(1)
    started = time.perf_counter()
    hops = None if job["hops"] in (DENSE, NO_ATTENTION) else int(job["hops"])
    config = config_for_data(
        data, job["model"], "tiny", time_steps=job["steps"], frames=job["frames"]
    )
    config = dataclasses.replace(config, attention_hops=hops)
    settings = TrainSettings(epochs=job["epochs"], seed=job["seed"])
    distil = teacher if job["model"] == "mk-sgn" else None
    # A run folder whose result is not in results.jsonl was interrupted: start it over (train
    # refuses a folder that holds a run, and the benchmark stopped on that after a Ctrl-C).
    shutil.rmtree(out, ignore_errors=True)
    train(data, config, settings, out, distil, progress=False)
    checkpoint = Path(out) / run_files.CHECKPOINT
    result = evaluate_checkpoint(checkpoint, data, progress=False)
    report = energy_report(checkpoint, data_path=data, teacher=teacher, backend="snntorch")
    return {
        "top1": result.top1,
        "energy_mj": report["per_sample"]["energy_mj"],
        "acs": report["per_sample"]["acs"],
        "macs": report["per_sample"]["macs"],
        "teacher_mj": report["teacher"]["energy_mj"],
        "reduction_percent": report["reduction_percent"],
        "paper_style_mj": report["paper_style"]["energy_mj"],
        "warnings": result.warnings + report["warnings"],
        "seconds": time.perf_counter() - started,
    }


def job_key(job: dict) -> tuple:
    """What identifies a run in results.jsonl."""
    return (job["model"], job["steps"], str(job["hops"]), job["seed"], job["epochs"], job["frames"])


def summarise(results: list[dict]) -> list[str]:
    """Mean top-1 and energy per (model, T, support)."""
    groups: dict[tuple, list[dict]] = {}
    for record in results:
        groups.setdefault((record["model"], record["steps"], str(record["hops"])), []).append(
            record
        )
    lines = [f"{'model':<9} {'T':>2} {'support':>8} {'runs':>4} {'top-1 %':>14} {'mJ/sample':>10}"]
    for (model, steps, hops), records in sorted(groups.items()):
        top1 = [100 * r["top1"] for r in records]
        spread = statistics.stdev(top1) if len(top1) > 1 else 0.0
        energy = statistics.mean(r["energy_mj"] for r in records)
        lines.append(
            f"{model:<9} {steps:>2} {hops:>8} {len(records):>4} "
            f"{statistics.mean(top1):>7.1f} ± {spread:<4.1f} {energy:>10.4f}"
        )
    return lines


def plot(results: list[dict], teacher: dict | None, path: Path) -> None:
    """Top-1 against energy per sample, one marker per run, a line per (model, support)."""
    from mksgn.benchmarks.report_plots import new_figure

    figure = new_figure(7, 4.5)
    axes = figure.add_subplot()
    groups: dict[tuple, list[dict]] = {}
    for record in results:
        groups.setdefault((record["model"], str(record["hops"])), []).append(record)
    for (model, hops), records in sorted(groups.items()):
        records.sort(key=lambda r: r["steps"])
        label = f"{model}" + ("" if model == "base-sgn" else f", attention {hops}")
        line = axes.plot(
            [r["energy_mj"] for r in records], [100 * r["top1"] for r in records], "o-", label=label
        )[0]
        for record in records:
            axes.annotate(
                f"T={record['steps']}",
                (record["energy_mj"], 100 * record["top1"]),
                fontsize=7,
                color=line.get_color(),
            )
    if teacher is not None:
        axes.axhline(100 * teacher["top1"], color="C7", linestyle="--", label="GCN teacher top-1")
        axes.axvline(teacher["energy_mj"], color="C7", linestyle=":", label="GCN teacher energy")
    axes.set_xscale("log")
    axes.set_xlabel("energy per sample, mJ (45nm-fp32, from the spikes that ran)")
    axes.set_ylabel("test top-1, %")
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    figure.savefig(path, dpi=120)


def main() -> None:
    """Run the missing configurations, print the table and draw the plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--supports", nargs="+", default=["1", "2", DENSE])
    parser.add_argument("--models", nargs="+", default=["base-sgn", "mk-sgn"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--samples-per-class", type=int, default=40)
    parser.add_argument("--frames", type=int, default=32, help="frames the models see")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("accuracy-energy-benchmark"))
    args = parser.parse_args()

    from mksgn.benchmarks.experiments import read_results, run_logged, synthetic_with_teacher
    from mksgn.benchmarks.prices import PJ_PER_MJ, PRESETS
    from mksgn.benchmarks.teacher_macs import teacher_macs
    from mksgn.train.evaluate import evaluate_checkpoint

    data, teacher = synthetic_with_teacher(
        args.out, args.classes, args.samples_per_class, args.epochs, args.frames
    )
    teacher_info = {
        "top1": evaluate_checkpoint(teacher, data, progress=False).top1,
        "energy_mj": teacher_macs(teacher) * PRESETS["45nm-fp32"].teacher_pj_per_mac / PJ_PER_MJ,
    }
    log = args.out / "results.jsonl"
    done = read_results(log)
    finished = {job_key(r) for r in done}
    jobs = [
        {
            "model": model,
            "steps": steps,
            "hops": hops,
            "seed": seed,
            "epochs": args.epochs,
            "frames": args.frames,
        }
        for model in args.models
        for steps in args.steps
        for hops in (args.supports if model == "mk-sgn" else [NO_ATTENTION])
        for seed in args.seeds
    ]
    todo = [job for job in jobs if job_key(job) not in finished]
    calls = [
        (
            job,
            run_one,
            (
                str(data),
                str(teacher),
                job,
                str(args.out / "-".join(map(str, job_key(job)))),
                os.getpid(),
            ),
        )
        for job in todo
    ]
    run_logged(log, done, calls, args.jobs)
    wanted = {job_key(job) for job in jobs}
    results = [r for r in done if job_key(r) in wanted]
    print(
        f"GCN teacher: top-1 {100 * teacher_info['top1']:.1f} %, {teacher_info['energy_mj']:.4f} mJ"
    )
    print("\n".join(summarise(results)))
    plot(results, teacher_info, args.out / "accuracy_energy.png")
    print(f"plot: {args.out / 'accuracy_energy.png'}")


if __name__ == "__main__":
    main()
