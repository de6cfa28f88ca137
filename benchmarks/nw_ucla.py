"""NW-UCLA cross-view: the third benchmark of the MK-SGN paper, on real recorded skeletons.

`python -m mksgn.benchmarks.nw_ucla --raw DIR [--out DIR] [--seeds 0 1 2] [--epochs 30]`

DIR is NW-UCLA's `all_sqe` folder (CTR-GCN's distribution, 1,484 JSON clips). The benchmark
prepares it (`data prepare --benchmark nw-ucla-xview`: views 1 and 2 train, view 3 test), then per
seed trains the GCN teacher, a Base-SGN and an MK-SGN distilled from that teacher, and evaluates
each on the whole test view. For the first seed's MK-SGN it counts energy per sample over the whole
test view from the spikes of a Lava-exact backend (default `loihi-emu-float`, which computes what
Lava float computes) against the teacher, and checks Lava float against the snnTorch reference
spike for spike on a few test samples. Writes OUT/nw_ucla.json and OUT/nw_ucla.md.

`--subset N` keeps N clips per split (spread over the classes), for a quick check of the script.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from mksgn import run_files
from mksgn.benchmarks.experiments import TRIO, TRIO_TITLES, spread, train_trio, write_summary

# Published NW-UCLA cross-view top-1 (not measured here): the MK-SGN paper and CTR-GCN.
PUBLISHED = {"MK-SGN (Zheng et al. 2024, spiking)": 92.3, "CTR-GCN (Chen et al. 2021)": 96.5}


def subset(source: Path, out: Path, per_split: int) -> Path:
    """A copy of a prepared npz with `per_split` samples per split, every k-th in file order."""
    from mksgn.train.data.formats import SkeletonArrays, open_dataset, write_ctrgcn_npz

    dataset = open_dataset(source)
    parts = []
    for split in ("train", "test"):
        arrays = dataset.load(split)
        keep = np.linspace(0, len(arrays) - 1, min(per_split, len(arrays))).round().astype(int)
        names = tuple(arrays.names[i] for i in keep) if arrays.names else None
        parts.append(SkeletonArrays(arrays.data[keep], arrays.labels[keep], names))
    write_ctrgcn_npz(
        out, *parts, num_classes=dataset.num_classes, layout=dataset.layout, bodies=dataset.bodies
    )
    return out


def spike_parity(graph_file: Path, data: Path, samples: int) -> dict[str, object]:
    """Lava float against the snnTorch reference on the first test samples, every layer."""
    from mksgn.benchmarks.counting import required_records
    from mksgn.benchmarks.demo import agreement
    from mksgn.convert.nir_io import read_nir
    from mksgn.targets.simulate import simulate

    record = required_records(read_nir(graph_file))
    runs = {
        backend: simulate(graph_file, backend, data_path=data, samples=samples, record=record)
        for backend in ("snntorch", "lava-float")
    }
    per_layer = agreement(runs["snntorch"].result.recorded, runs["lava-float"].result.recorded)
    spiking = {node: value for node, value in per_layer.items() if node in record}
    return {
        "samples": samples,
        "identical": all(value == 1.0 for value in spiking.values()),
        "per_layer": spiking,
        "lava_s_per_sample": runs["lava-float"].result.wall_s_per_sample,
    }


def markdown(summary: dict) -> str:
    """The README-style table of a run."""
    energy, parity = summary["energy"], summary["parity"]
    lines = [
        "| model | NW-UCLA cross-view test top-1 (measured here) |",
        "| --- | --- |",
    ]
    for model in TRIO:
        scores = [seed[model]["top1"] for seed in summary["seeds"].values()]
        lines.append(f"| {TRIO_TITLES[model]} | {spread(scores)} |")
    for name, top1 in PUBLISHED.items():
        lines.append(f"| {name} | {top1} % (published, not measured here) |")
    lines += [
        "",
        f"- Data: {summary['train_samples']} train / {summary['test_samples']} test clips, "
        f"{summary['classes']} classes, layout {summary['layout']}; preset {summary['preset']}, "
        f"{summary['frames']} frames, {summary['epochs']} epochs ({summary['teacher_epochs']} "
        "for the teacher), seeds " + ", ".join(map(str, summary["seeds"])) + ".",
        f"- Energy per sample (MK-SGN of seed {summary['energy_seed']}, whole test view, spikes of "
        f"{energy['backend']}, {energy['preset']}): {energy['per_sample']['energy_mj']:.4f} mJ "
        f"vs the teacher's {energy['teacher']['energy_mj']:.4f} mJ "
        f"({energy['reduction_percent']:.1f} % less).",
        f"- Lava float vs snnTorch on {parity['samples']} test samples: "
        + ("spike for spike identical on every layer" if parity["identical"] else "DIFFERENT")
        + f" ({parity['lava_s_per_sample']:.1f} s per sample on Lava).",
        f"- Wall time: {summary['seconds'] / 60:.1f} min on this machine"
        + (" (finished runs reused, their training not counted)." if summary["reused"] else "."),
        f"- Command: `{summary['command']}`",
    ]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> dict[str, object]:
    """Every stage; returns the summary written to OUT/nw_ucla.json."""
    from mksgn.benchmarks.energy import energy_report
    from mksgn.convert.export import export_checkpoint
    from mksgn.train.data.formats import open_dataset
    from mksgn.train.data.nw_ucla import prepare_nw_ucla

    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "nw-ucla-xview.npz"
    prepared = prepare_nw_ucla(args.raw, data, progress=False)
    if args.subset:
        data = subset(data, out / f"nw-ucla-xview-{args.subset}.npz", args.subset)
    dataset = open_dataset(data)
    settings = {"batch_size": args.batch_size, "rotation": args.rotation, "scale": args.scale}
    seeds = {
        seed: train_trio(
            data,
            out / f"seed{seed}",
            args.epochs,
            args.teacher_epochs,
            {**settings, "seed": seed},
            args.preset,
            args.frames,
            args.reuse_runs,
        )
        for seed in args.seeds
    }
    energy_seed = args.seeds[0]
    checkpoints = out / f"seed{energy_seed}"
    graph_file = out / "mk-sgn.nir"
    export_checkpoint(checkpoints / "mk-sgn" / run_files.CHECKPOINT, nir_path=graph_file)
    energy = energy_report(
        graph_file,
        data_path=data,
        teacher=checkpoints / "gcn" / run_files.CHECKPOINT,
        backend=args.energy_backend,
    )
    print(f"energy: {energy['per_sample']['energy_mj']:.4f} mJ per sample", file=sys.stderr)
    parity = spike_parity(graph_file, data, args.parity_samples)
    summary = {
        "command": "python -m mksgn.benchmarks.nw_ucla " + " ".join(sys.argv[1:]),
        "layout": dataset.layout.name,
        "classes": dataset.num_classes,
        "train_samples": dataset.split_shape("train")[0],
        "test_samples": dataset.split_shape("test")[0],
        "prepare": prepared.to_dict(),
        "preset": args.preset,
        "frames": args.frames,
        "epochs": args.epochs,
        "teacher_epochs": args.teacher_epochs,
        "seeds": seeds,
        "energy_seed": energy_seed,
        "energy": energy,
        "parity": parity,
        "published_top1_percent": PUBLISHED,
        "seconds": time.perf_counter() - started,
        "reused": bool(args.reuse_runs),
    }
    write_summary(out, "nw_ucla", summary, markdown(summary))
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw", required=True, type=Path, help="NW-UCLA's all_sqe folder")
    parser.add_argument("--out", type=Path, default=Path("nw-ucla-out"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30, help="Base-SGN and MK-SGN")
    parser.add_argument("--teacher-epochs", type=int, default=30)
    parser.add_argument("--preset", choices=("tiny", "paper"), default="tiny")
    parser.add_argument("--frames", type=int, default=32, help="frames the models see")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--energy-backend",
        default="loihi-emu-float",
        choices=("loihi-emu-float", "lava-float", "loihi-emu", "lava-fixed", "snntorch"),
    )
    parser.add_argument("--parity-samples", type=int, default=2)
    parser.add_argument(
        "--rotation", type=float, default=0.3, help="training rotation, radians per axis"
    )
    parser.add_argument("--scale", type=float, default=0.0, help="training scaling, ± fraction")
    parser.add_argument("--subset", type=int, help="keep N clips per split (quick check)")
    parser.add_argument(
        "--reuse-runs",
        action="store_true",
        help="evaluate a seed's finished checkpoint in OUT instead of training it again "
        "(after an interrupted run; its training time is then not counted)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its markdown table."""
    summary = run(parse_args(argv))
    print(markdown(summary), end="")


if __name__ == "__main__":
    main()
