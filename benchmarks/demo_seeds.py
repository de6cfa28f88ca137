"""The demo's accuracy and energy over several training seeds: what `mksgn demo` shows for one.

`python -m mksgn.benchmarks.demo_seeds [--seeds 0 1 2] [--quick] [--out DIR] [--reuse-runs]`

On the demo's synthetic set (the same data for every seed), per training seed: the GCN teacher,
a Base-SGN and an MK-SGN distilled from that teacher, trained exactly as the demo trains them and
evaluated on the whole test split; each MK-SGN's energy per sample over the whole test split,
counted from the spikes of a Lava-exact backend (default `loihi-emu-float`, which computes what
Lava float computes) and priced against its own teacher. Writes OUT/demo_seeds.json and
OUT/demo_seeds.md (mean ± standard deviation over the seeds, and the gaps the README quotes).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from mksgn import run_files
from mksgn.benchmarks.demo import FULL, QUICK
from mksgn.benchmarks.experiments import TRIO, TRIO_TITLES, spread, train_trio, write_summary


def seed_energy(run: Path, data: Path, backend: str) -> dict[str, float]:
    """One seed's MK-SGN energy per sample over the test split against its teacher (mJ)."""
    from mksgn.benchmarks.energy import energy_report
    from mksgn.convert.export import export_checkpoint

    graph = run / "mk-sgn.nir"
    if not graph.exists():
        export_checkpoint(run / "mk-sgn" / run_files.CHECKPOINT, nir_path=graph)
    report = energy_report(
        graph, data_path=data, teacher=run / "gcn" / run_files.CHECKPOINT, backend=backend
    )
    return {
        "student_mj": report["per_sample"]["energy_mj"],
        "teacher_mj": report["teacher"]["energy_mj"],
        "reduction_percent": report["reduction_percent"],
        "samples": report["samples"],
    }


def markdown(summary: dict) -> str:
    """The README-style table of a run."""
    seeds = summary["seeds"]
    top1 = {model: [seeds[s]["models"][model]["top1"] for s in seeds] for model in TRIO}
    gaps = {
        model: [top1["gcn"][i] - top1[model][i] for i in range(len(seeds))]
        for model in ("base-sgn", "mk-sgn")
    }
    energy = [seeds[s]["energy"] for s in seeds]
    lines = ["| model | test top-1 | below the teacher (points) |", "| --- | --- | --- |"]
    for model in TRIO:
        gap = "" if model == "gcn" else _points(gaps[model])
        lines.append(f"| {TRIO_TITLES[model]} | {spread(top1[model])} | {gap} |")
    lines += [
        "",
        f"- MK-SGN energy per sample ({summary['energy_backend']} spikes, whole test split, "
        f"45nm-fp32): {_mean_sd([e['student_mj'] for e in energy], 4)} mJ against the teacher's "
        f"{_mean_sd([e['teacher_mj'] for e in energy], 4)} mJ: "
        f"{_mean_sd([e['reduction_percent'] for e in energy], 1)} % less.",
        f"- Per seed ({', '.join(map(str, seeds))}): "
        + "; ".join(
            " / ".join(f"{100 * seeds[s]['models'][m]['top1']:.1f}" for m in TRIO) for s in seeds
        )
        + " % (teacher / Base-SGN / MK-SGN).",
        f"- Data: the {'quick ' if summary['quick'] else ''}demo's synthetic set, "
        f"{summary['test_samples']} test samples; wall time {summary['seconds'] / 60:.1f} min"
        + (" (finished runs reused)." if summary["reused"] else "."),
        f"- Command: `{summary['command']}`",
    ]
    return "\n".join(lines) + "\n"


def _mean_sd(values: list[float], digits: int) -> str:
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {deviation:.{digits}f}"


def _points(gaps: list[float]) -> str:
    return _mean_sd([100 * gap for gap in gaps], 1)


def run(args: argparse.Namespace) -> dict[str, object]:
    """Every seed; returns the summary written to OUT/demo_seeds.json."""
    from mksgn.train.data import synthetic

    started = time.perf_counter()
    size = QUICK if args.quick else FULL
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "synthetic.npz"
    dataset = synthetic.generate(size.classes, size.samples_per_class, size.frames, seed=0)
    synthetic.write_npz(dataset, data)
    seeds: dict[str, dict] = {}
    for seed in args.seeds:
        run_dir = out / f"seed{seed}"
        models = train_trio(
            data,
            run_dir,
            size.student_epochs,
            size.teacher_epochs,
            {"seed": seed},
            frames=size.model_frames,
            reuse=args.reuse_runs,
        )
        seeds[str(seed)] = {"models": models, "energy": seed_energy(run_dir, data, args.backend)}
        print(f"seed {seed}: {seeds[str(seed)]['energy']}", file=sys.stderr)
    summary = {
        "command": "python -m mksgn.benchmarks.demo_seeds " + " ".join(sys.argv[1:]),
        "quick": args.quick,
        "energy_backend": args.backend,
        "test_samples": next(iter(seeds.values()))["models"]["gcn"]["test_samples"],
        "seeds": seeds,
        "reused": args.reuse_runs,
        "seconds": time.perf_counter() - started,
    }
    write_summary(out, "demo_seeds", summary, markdown(summary))
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--quick", action="store_true", help="the quick demo's size")
    parser.add_argument("--out", type=Path, default=Path("demo-seeds-out"))
    parser.add_argument(
        "--backend",
        default="loihi-emu-float",
        choices=("loihi-emu-float", "lava-float", "snntorch"),
        help="whose spikes the energy is counted from",
    )
    parser.add_argument(
        "--reuse-runs",
        action="store_true",
        help="evaluate a seed's finished checkpoints in OUT instead of training them again",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its markdown table."""
    print(markdown(run(parse_args(argv))), end="")


if __name__ == "__main__":
    main()
