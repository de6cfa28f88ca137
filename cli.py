"""The `mksgn` command line: a thin click layer over mksgn.train, .convert, .targets, .benchmarks."""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from mksgn import __version__
from mksgn.errors import Interrupted, MksgnError
from mksgn.lifetime import end_process

DEBUG_FLAG = "--debug"
F = TypeVar("F", bound=Callable[..., Any])


def emit_json(obj: object) -> None:
    """Print exactly one JSON object on stdout (for commands run with --json)."""
    click.echo(json.dumps(obj, indent=2, sort_keys=False))


def emit(
    as_json: bool, data: object, text: Callable[[], str], warnings: Iterable[str] = ()
) -> None:
    """A command's result: `data` as JSON with --json, else `text()`; then its warnings."""
    if as_json:
        emit_json(data)
    else:
        click.echo(text())
    echo_warnings(warnings)


def echo_warnings(warnings: Iterable[str]) -> None:
    """Print each of a result's warnings (mksgn.diagnostics) on stderr, one line each."""
    for warning in warnings:
        click.echo(f"Warning: {warning}", err=True)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=f"Add {DEBUG_FLAG} anywhere (or set MKSGN_DEBUG=1) to see tracebacks of errors.",
)
@click.version_option(__version__, prog_name="mksgn")
def cli() -> None:
    """Spiking graph convolutional networks for skeleton action recognition:
    train in snnTorch, export to NIR, simulate on Lava (Loihi 2), report energy."""


def value_option(flag: str, default: Any, kind: Any, text: str) -> Callable[[F], F]:
    """A `--flag VALUE` option whose default --help shows."""
    return click.option(flag, default=default, show_default=True, type=kind, help=text)


def path_option(
    flag: str, dest: str | None, text: str, required: bool = False, **path: Any
) -> Callable[[F], F]:
    """A `--flag PATH` option given to the command as a pathlib.Path (into `dest`, None: the
    flag's name); `path` as for click.Path (exists, dir_okay, file_okay)."""
    names = (flag,) if dest is None else (flag, dest)
    kind = click.Path(path_type=Path, **path)
    return click.option(*names, required=required, type=kind, help=text)


device_option = value_option(
    "--device",
    "cpu",
    click.Choice(["cpu", "cuda"]),
    "Where torch computes (cuda: this process's GPU).",
)


def layout_option(command):
    """--layout NAME|FILE.json: the skeleton of a dataset that records none (PYSKL pickles,
    ST-GCN arrays, CTR-GCN npz of other skeletons)."""
    return click.option(
        "--layout",
        "layout_name",
        metavar="NAME|FILE.json",
        help="Skeleton layout of data that records none: ntu-25, kinect-v1-20, coco-17 or a "
        'JSON file {"name", "joints", "edges", "center", "channels"} [default: the one the '
        "file records, else ntu-25 for 25 joints (3-D), coco-17 for 17 (2-D + score)].",
    )(command)


def benchmark_option(command):
    """--benchmark NAME: which split table of a multi-benchmark PYSKL pickle to read."""
    return click.option(
        "--benchmark",
        "data_benchmark",
        metavar="NAME",
        help="The split table of a PYSKL pickle that holds several (e.g. xsub, xview).",
    )(command)


def resolve_layout_option(name: str | None):
    """The SkeletonLayout named by --layout, or None."""
    if name is None:
        return None
    from mksgn.train.data.layout import load_layout

    return load_layout(name)


@cli.group()
def data() -> None:
    """Skeleton datasets: synthesize, prepare NTU RGB+D, inspect."""


@data.command("synth")
@path_option(
    "--out",
    "out",
    "Output .npz (CTR-GCN format) or, with --format skeleton, a folder.",
    required=True,
)
@value_option("--classes", 8, click.IntRange(2, None), "Number of action classes.")
@value_option(
    "--samples-per-class",
    40,
    click.IntRange(2, None),
    "Samples per class (split between train and test by performer).",
)
@value_option("--frames", 64, click.IntRange(8, 300), "Frames per sample.")
@value_option("--seed", 0, int, "Random seed.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["npz", "skeleton"]),
    default="npz",
    show_default=True,
    help="CTR-GCN npz, or raw NTU .skeleton files with NTU names.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def data_synth(
    out: Path, classes: int, samples_per_class: int, frames: int, seed: int, fmt: str, as_json: bool
) -> None:
    """Generate the built-in synthetic skeleton action set."""
    from mksgn.train.data import synthetic

    dataset = synthetic.generate(
        classes=classes, samples_per_class=samples_per_class, frames=frames, seed=seed
    )
    if fmt == "npz":
        synthetic.write_npz(dataset, out)
    else:
        synthetic.write_skeleton_dir(dataset, out)
    summary = synthetic.summarize(dataset, out, fmt)
    emit(
        as_json,
        summary,
        lambda: (
            f"Wrote {summary['samples']} samples ({summary['classes']} classes, "
            f"{summary['train']} train / {summary['test']} test) to {out}"
        ),
    )


@data.command("prepare")
@path_option(
    "--raw",
    "raw_dir",
    "Folder of NTU RGB+D .skeleton files, or NW-UCLA's all_sqe folder of .json clips "
    "(searched recursively).",
    required=True,
    exists=True,
    file_okay=False,
)
@click.option(
    "--benchmark",
    required=True,
    type=click.Choice(["ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset", "nw-ucla-xview"]),
    help="Which benchmark's train/test split to write (nw-ucla-xview: views 1, 2 train, view 3 "
    "test; layout kinect-v1-20).",
)
@path_option("--out", "out", "Output .npz in the CTR-GCN format.", required=True, dir_okay=False)
@click.option(
    "--strict",
    is_flag=True,
    help="Stop with an error at the first malformed file instead of skipping it.",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, None),
    help="Parser processes for NTU [default: number of CPUs].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def data_prepare(
    raw_dir: Path, benchmark: str, out: Path, strict: bool, workers: int | None, as_json: bool
) -> None:
    """Turn raw NTU RGB+D .skeleton files (or NW-UCLA .json clips) into a CTR-GCN npz for one
    benchmark."""
    from mksgn.train.data.nw_ucla import NW_UCLA_XVIEW, prepare_nw_ucla
    from mksgn.train.data.prepare import prepare_ntu

    if benchmark == NW_UCLA_XVIEW:
        summary = prepare_nw_ucla(raw_dir, out, strict=strict, progress=not as_json)
    else:
        summary = prepare_ntu(
            raw_dir, benchmark, out, strict=strict, workers=workers, progress=not as_json
        )
    emit(as_json, summary.to_dict(), summary.format)


@data.command("inspect")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@layout_option
@benchmark_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def data_inspect(
    path: Path, layout_name: str | None, data_benchmark: str | None, as_json: bool
) -> None:
    """Describe a skeleton dataset: format, layout, samples per split and class, frames, bodies,
    ranges."""
    from mksgn.train.data.inspect import format_inspection, inspect_dataset

    info = inspect_dataset(path, resolve_layout_option(layout_name), data_benchmark)
    emit(as_json, info, lambda: format_inspection(info))


@cli.command("train")
@path_option(
    "--data",
    "data_path",
    "Skeleton dataset (CTR-GCN npz, ST-GCN npy, PYSKL pickle) [--resume: the run's].",
    exists=True,
)
@layout_option
@benchmark_option
@click.option(
    "--model",
    "model_name",
    type=click.Choice(["gcn", "base-sgn", "mk-sgn"]),
    help="GCN teacher, Base-SGN or MK-SGN student [--resume: the run's].",
)
@path_option(
    "--teacher",
    None,
    "GCN teacher checkpoint: distil it into the spiking student.",
    exists=True,
    dir_okay=False,
)
@value_option(
    "--preset",
    "tiny",
    click.Choice(["tiny", "paper"]),
    "Model size: tiny (channels 16-64, 32 frames; minutes on 2 cores) or paper (64-256, "
    "64 frames).",
)
@value_option(
    "--time-steps",
    4,
    click.IntRange(1, None),
    "Spiking models: time steps T each sample is run for (direct coding).",
)
@click.option(
    "--frames", type=click.IntRange(8, None), help="Frames per sample [default: preset's]."
)
@value_option(
    "--epochs",
    30,
    click.IntRange(1, None),
    "Passes over the training split (the schedule spans them).",
)
@click.option(
    "--attention-hops",
    type=click.IntRange(0, None),
    help="MK-SGN: each joint attends to joints within this many skeleton edges "
    "[default: the preset's, 2]; --dense-attention attends to all.",
)
@click.option(
    "--dense-attention",
    is_flag=True,
    help="MK-SGN: attention over every joint (deploys as dense V x V synapses).",
)
@value_option(
    "--batch-size", 16, click.IntRange(1, None), "Global batch (split over torchrun processes)."
)
@click.option(
    "--lr", type=click.FloatRange(0, None, min_open=True), help="[default: AdamW 2e-3, SGD 0.05]"
)
@value_option(
    "--optimizer",
    "adamw",
    click.Choice(["adamw", "sgd"]),
    "AdamW, or SGD with Nesterov momentum 0.9.",
)
@value_option(
    "--schedule",
    "cosine",
    click.Choice(["cosine", "step"]),
    "Learning-rate decay after warm-up: cosine to 0, or x0.1 at 60 % and 80 % of the epochs.",
)
@value_option(
    "--warmup-epochs", 1, click.IntRange(0, None), "Epochs of linear learning-rate warm-up."
)
@value_option("--seed", 0, int, "Seed of the initial weights, shuffling and augmentation.")
@value_option(
    "--rotation",
    0.3,
    click.FloatRange(0, None),
    "Augmentation: random rotation up to this many radians about each axis.",
)
@value_option(
    "--scale",
    0.0,
    click.FloatRange(0, 1, max_open=True),
    "Augmentation: random scaling by a factor in [1 - SCALE, 1 + SCALE].",
)
@value_option("--kd-weight", 0.5, click.FloatRange(0, None), "Soft-label (KL) weight.")
@value_option(
    "--feature-weight", 0.1, click.FloatRange(0, None), "Feature-distillation (MSE) weight."
)
@value_option(
    "--kd-temperature",
    2.0,
    click.FloatRange(0, None, min_open=True),
    "Temperature of the softened logits in the distillation loss.",
)
@device_option
@value_option("--workers", 0, click.IntRange(0, None), "Data loader processes.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --out from its checkpoint, with the data, model, teacher and "
    "settings its config.json records (options given again change them, where the "
    "checkpoint allows; a larger --epochs extends the run).",
)
@path_option(
    "--out",
    "out_dir",
    "Run folder: checkpoint.pt, metrics.jsonl, config.json.",
    required=True,
    file_okay=False,
)
@click.option("--json", "as_json", is_flag=True, help="Print the final metrics as JSON.")
def train_command(**options: Any) -> None:
    """Train a model (use torchrun --nproc_per_node N -m mksgn.cli train ... for several processes)."""
    from click.core import ParameterSource

    from mksgn import run_files
    from mksgn.train.distributed import environment_rank
    from mksgn.train.loading import count_short_clips
    from mksgn.train.plan import new_plan, resumed_plan
    from mksgn.train.training import train

    out_dir: Path = options["out_dir"]
    context = click.get_current_context()
    given = {
        name
        for name in options
        if context.get_parameter_source(name)
        not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)
    }
    if options["resume"]:
        plan = resumed_plan(out_dir, options, given)
    else:
        for flag, name in (("--data", "data_path"), ("--model", "model_name")):
            if options[name] is None:
                raise click.UsageError(f"Missing option '{flag}' (only --resume reads it from DIR)")
        plan = new_plan(options)
    try:
        metrics = train(
            plan.data_path,
            plan.config,
            plan.settings,
            out_dir,
            plan.teacher,
            options["resume"],
            progress=not options["as_json"],
        )
    except KeyboardInterrupt:
        raise Interrupted(
            resume_advice(out_dir / run_files.CHECKPOINT, plan.settings.epochs)
        ) from None
    if environment_rank() != 0:
        return
    if options["as_json"]:
        emit_json(metrics)
        return
    config = plan.config
    short = count_short_clips(plan.data_path, config, plan.settings.benchmark)
    resampled = (
        f"; {short} clips shorter than {config.frames} frames were resampled to {config.frames}"
        if short
        else ""
    )
    click.echo(
        f"{plan.model_name}: epoch {metrics.get('epoch')}, test top-1 "
        f"{metrics.get('test_acc', 0):.4f}; checkpoint {out_dir / run_files.CHECKPOINT}{resampled}"
    )


def resume_advice(checkpoint: Path, epochs: int) -> str:
    """What an interrupted training kept, and the command that continues it."""
    from mksgn.train.checkpoint import load_checkpoint

    if not checkpoint.is_file():
        return "no epoch was complete, so nothing was saved; start the run again"
    try:
        done = load_checkpoint(checkpoint).epoch
    except MksgnError:
        return f"{checkpoint} could not be read back; start the run again"
    return (
        f"epoch {done} of {epochs} is saved in {checkpoint}; continue with: "
        f"mksgn train --resume --out {checkpoint.parent}"
    )


@cli.command("evaluate")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@path_option(
    "--data",
    "data_path",
    "Dataset of the kind the model was trained on (read with the model's skeleton layout).",
    required=True,
    exists=True,
)
@benchmark_option
@value_option(
    "--split",
    "test",
    click.Choice(["train", "test"]),
    "Split to evaluate (test-time sampling either way).",
)
@value_option("--batch-size", 32, click.IntRange(1, None), "Samples per forward pass.")
@device_option
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def evaluate_command(
    checkpoint: Path,
    data_path: Path,
    data_benchmark: str | None,
    split: str,
    batch_size: int,
    device: str,
    as_json: bool,
) -> None:
    """Accuracy (top-1/top-5), per-class accuracy, confusion matrix and firing rates of a checkpoint."""
    from mksgn.train.evaluate import evaluate_checkpoint, format_evaluation

    result = evaluate_checkpoint(
        checkpoint, data_path, split, batch_size, device, not as_json, data_benchmark
    )
    emit(as_json, result.to_dict(), lambda: format_evaluation(result), result.warnings)


@cli.command("export")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@path_option(
    "--nir",
    "nir_path",
    "Write a spiking student (Base-SGN, MK-SGN) as a NIR graph (HDF5).",
    dir_okay=False,
)
@path_option(
    "--onnx",
    "onnx_path",
    "Write the GCN teacher as ONNX (checked against onnxruntime).",
    dir_okay=False,
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def export_command(
    checkpoint: Path, nir_path: Path | None, onnx_path: Path | None, as_json: bool
) -> None:
    """Export a checkpoint: spiking students to NIR, the GCN teacher to ONNX."""
    from mksgn.convert.export import export_checkpoint

    if nir_path is None and onnx_path is None:
        raise click.UsageError("give --nir OUT.nir (students) or --onnx OUT.onnx (teacher)")
    summary = export_checkpoint(checkpoint, nir_path, onnx_path)
    emit(
        as_json,
        summary,
        lambda: f"Wrote {summary['path']} ({summary['format']}, {summary['bytes']} bytes)",
    )


def parse_shard_option(_ctx: click.Context, _param: click.Parameter, value: str | None):
    """--shard i/n as a targets.shard.Shard (a usage error if malformed)."""
    if value is None:
        return None
    from mksgn.targets.shard import parse_shard

    try:
        return parse_shard(value)
    except MksgnError as error:
        raise click.BadParameter(str(error)) from None


def graph_run_options(command):
    """The options of every command that runs a NIR graph on samples: what to feed it, how
    many samples, the Lava watchdog's limit, the emulator's batch size and the shard."""
    options = [
        path_option(
            "--data",
            "data_path",
            "Skeleton dataset: its test split is encoded as the graph's metadata says "
            "(frames, modalities, skeleton layout).",
            exists=True,
        ),
        click.option(
            "--benchmark",
            "data_benchmark",
            metavar="NAME",
            help="With --data: the split table of a PYSKL pickle that holds several.",
        ),
        path_option(
            "--input",
            "input_path",
            "X.npy shaped (T, *input shape) or (samples, T, *input shape).",
            exists=True,
            dir_okay=False,
        ),
        click.option(
            "--samples", type=click.IntRange(1, None), help="Run only the first N samples."
        ),
        click.option(
            "--timeout",
            "timeout_s",
            type=click.FloatRange(0, None, min_open=True),
            help="Seconds before the Lava watchdog stops a run [default: estimated from the graph].",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(1, None),
            help="Samples run side by side [default: 8 on loihi-emu, 1 on Lava: there samples"
            " stream one after another through one network, which measured faster].",
        ),
        click.option(
            "--shard",
            metavar="I/N",
            callback=parse_shard_option,
            help="Run only contiguous slice I of N of the samples (needs --out; fixed point "
            "quantises for the range of all samples); combine the parts with 'mksgn merge'.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def check_graph_run_options(options: dict[str, Any], part: str) -> None:
    """--data/--input/--shard/--out of a graph_run_options command checked together (`part` names
    the file --out takes with --shard); a misuse is a usage error."""
    from mksgn.targets.inputs import check_input_options

    try:
        check_input_options(
            options["data_path"], options["input_path"], options["shard"], options["out"], part
        )
    except MksgnError as error:
        raise click.UsageError(str(error)) from None


@cli.command("simulate")
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@graph_run_options
@click.option(
    "--backend",
    required=True,
    type=click.Choice(["lava-float", "lava-fixed", "loihi-emu", "loihi-emu-float", "snntorch"]),
    help="Lava CPU simulation (float or Loihi 2 fixed point), its NumPy emulator (loihi-emu: "
    "bit for bit lava-fixed; loihi-emu-float: lava-float) or the snnTorch reference.",
)
@click.option(
    "--record",
    multiple=True,
    metavar="NODE",
    help="Also record this node (repeatable; nested nodes as 'subgraph.node').",
)
@path_option(
    "--out", "out", "Write the recorded arrays (samples, T, *shape) to an .npz.", dir_okay=False
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def simulate_command(
    model: Path, data_benchmark: str | None, as_json: bool, **options: Any
) -> None:
    """Run a NIR graph (or a converted folder) on a backend, step by step."""
    from mksgn.targets.simulate import simulate

    check_graph_run_options(options, "PART.npz")
    # The options are simulate's keyword arguments, named alike.
    result = simulate(model, benchmark=data_benchmark, **options)
    emit(as_json, result.to_dict(), result.format, result.warnings)


@cli.command("convert")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@path_option(
    "--out",
    "out",
    "Artifact folder: model.nir, manifest.json (and model.net with --netx).",
    required=True,
    file_okay=False,
)
@click.option(
    "--fixed-point", is_flag=True, help="Quantise to Loihi 2 fixed point (8-bit weights)."
)
@click.option(
    "--dt",
    default=None,
    type=click.FloatRange(0, None, min_open=True),
    help="Forward-Euler time step for LIF/LI/CubaLIF, in seconds [default: snnTorch's 1e-4].",
)
@click.option(
    "--netx", is_flag=True, help="Also write a lava-dl netx HDF5 (chains of layers only)."
)
@path_option(
    "--calibrate",
    "calibrate",
    "Data whose input range fixed point is quantised for, once, here: a skeleton dataset "
    "(its train split, encoded as the graph expects) or an .npy array like --input "
    "[default: inputs within ±1, e.g. spike trains].",
    exists=True,
)
@click.option(
    "--force", is_flag=True, help="Replace an existing artifact folder --out (and only that)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def convert_command(
    model: Path,
    out: Path,
    fixed_point: bool,
    dt: float | None,
    netx: bool,
    calibrate: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Turn a NIR graph into a Lava process-graph artifact: the graph, and with --fixed-point
    the Loihi 2 integers that `simulate DIR` and `energy DIR` then run."""
    from mksgn.convert.artifact import convert_nir
    from mksgn.targets.inputs import calibration_range

    abs_max = None if calibrate is None else calibration_range(model, calibrate)
    manifest = convert_nir(
        model,
        out,
        fixed_point=fixed_point,
        dt=dt,
        netx=netx,
        force=force,
        input_abs_max=abs_max,
        calibration=None if calibrate is None else str(calibrate),
    )
    if as_json:
        emit_json(manifest)
    else:
        from mksgn.convert.loihi2_resources import format_loihi2

        shape = ", ".join(str(n) for n in manifest["input"]["shape"])
        click.echo(
            f"Converted {model} -> {out}: {len(manifest['nodes'])} Lava processes, pipeline depth "
            f"{manifest['pipeline_depth']}{', fixed point' if fixed_point else ''}; "
            f"simulate --input takes an array shaped (T, {shape}) or (samples, T, {shape})"
        )
        resources = manifest["loihi2"]
        click.echo(
            format_loihi2(resources)
            if "error" not in resources
            else f"Loihi 2 resources: none ({resources['error']})"
        )


@cli.command("energy")
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@graph_run_options
@path_option(
    "--teacher",
    None,
    "The GCN teacher (checkpoint or ONNX) to compare with.",
    exists=True,
    dir_okay=False,
)
@value_option(
    "--backend",
    "snntorch",
    click.Choice(["snntorch", "lava-float", "lava-fixed", "loihi-emu", "loihi-emu-float"]),
    "Backend whose spikes are counted.",
)
@value_option(
    "--preset",
    "45nm-fp32",
    click.Choice(["45nm-fp32", "45nm-int8", "loihi"]),
    "Energy per operation: Horowitz 45 nm FP32/INT8, or Loihi (Davies et al. 2018).",
)
@click.option("--ac-pj", type=float, help="Override the preset's pJ per accumulate.")
@click.option("--mac-pj", type=float, help="Override the preset's pJ per multiply-accumulate.")
@click.option("--update-pj", type=float, help="Override the preset's pJ per neuron update.")
@path_option(
    "--out",
    "out",
    "Also write the report as JSON (with --shard: the part 'mksgn merge' reads).",
    dir_okay=False,
)
@click.option("--json", "as_json", is_flag=True, help="Print the energy report as JSON.")
def energy_command(model: Path, data_benchmark: str | None, as_json: bool, **options: Any) -> None:
    """Synaptic operations and energy per sample of a student (MODEL.nir or checkpoint), counted
    from the spikes a backend produced, beside the GCN teacher."""
    from mksgn.benchmarks.energy import energy_report, format_energy

    check_graph_run_options(options, "PART.json")
    # The options are energy_report's keyword arguments, named alike.
    report = energy_report(model, benchmark=data_benchmark, **options)
    emit(as_json, report, lambda: format_energy(report), report["warnings"])


@cli.command("merge")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.argument(
    "parts", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--json", "as_json", is_flag=True, help="Print the merged summary as JSON.")
def merge_command(out: Path, parts: tuple[Path, ...], as_json: bool) -> None:
    """Combine the parts of a sharded run into OUT: 'simulate --shard I/N --out PART.npz' parts
    into the .npz (and summary) one run over all samples writes, or 'energy --shard I/N --out
    PART.json' parts into its report. All N parts are needed, in any order.

    \b
    Example (4 processes or machines, then one merge):
      mksgn simulate M.nir --data D.npz --backend loihi-emu --shard 2/4 --out part2.npz
      mksgn merge all.npz part1.npz part2.npz part3.npz part4.npz --json"""
    import zipfile

    from mksgn.benchmarks.energy import format_energy, merge_energy
    from mksgn.targets.simulate import merge_simulations

    paths = list(parts)
    for path in paths:
        if not path.is_file():
            raise MksgnError(f"part {path} does not exist")
    if out.resolve() in {path.resolve() for path in paths}:
        raise MksgnError(f"OUT {out} is one of the parts; write the merged result elsewhere")
    zipped = [zipfile.is_zipfile(path) for path in paths]
    if any(zipped) and not all(zipped):
        raise MksgnError("mix of .npz (simulate) and JSON (energy) parts; merge one kind at once")
    if all(zipped):  # simulate parts are .npz archives, energy parts JSON
        simulation = merge_simulations(out, paths)
        summary, text = simulation.to_dict(), simulation.format()
    else:
        summary = merge_energy(out, paths)
        text = format_energy(summary)
    emit(as_json, summary, lambda: text)


@cli.command()
@click.option(
    "--out",
    "out",
    default=Path("demo-out"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for everything the demo writes.",
)
@click.option("--quick", is_flag=True, help="Smaller data, models and runs, for a fast check.")
def demo(out: Path, quick: bool) -> None:
    """Run the pipeline on the built-in synthetic skeleton data: train a GCN teacher, a Base-SGN
    and a distilled MK-SGN, export to NIR, simulate on snnTorch, Lava float and Lava fixed point,
    count energy, and write the report (OUT/report/report.md)."""
    from mksgn.benchmarks.demo import FULL, QUICK, run_demo

    run_demo(out, QUICK if quick else FULL, click.echo)


@cli.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@path_option(
    "--out",
    "out",
    "Folder for the report (default RUN_DIR/report); it is replaced as a whole.",
    file_okay=False,
)
def report_command(run_dir: Path, out: Path | None) -> None:
    """Gather a run directory into report.md, report.json and PNG plots.

    \b
    A demo folder ('mksgn demo' wrote summary.json) gets the full report: training curves,
    accuracy, firing rate and energy per layer, parity, fixed point, Loihi 2, spike raster.
    Required there (an Error names what is missing): summary.json, <model>/metrics.jsonl of
    every model it lists, spikes-snntorch.npz, spikes-lava-float.npz.
    Any other folder gets the sections its files support (within two folder levels):
    training curves from metrics.jsonl, accuracy from 'simulate --out' .npz files, energy from
    'energy --out' .json reports, spike parity between two backends' .npz files of one model,
    Loihi 2 resources from a 'convert' folder; report.md lists what it left out and why.
    All files appear together or none do."""
    from mksgn.benchmarks.report import SUMMARY, write_report
    from mksgn.benchmarks.run_report import write_run_report

    if (run_dir / SUMMARY).is_file():
        destination = write_report(run_dir, out)
    else:
        destination = write_run_report(run_dir, out)
    click.echo(f"Report of {run_dir} -> {destination / 'report.md'} (+ report.json, plots)")


def interrupt_on_terminate(_signum: int, _frame: object) -> None:
    """SIGTERM takes the Ctrl-C path, so cleanup runs: temporary outputs are removed and Lava
    child sessions are killed instead of being orphaned."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the click app with the project's error convention."""
    signal.signal(signal.SIGTERM, interrupt_on_terminate)
    # A shell's background job (`mksgn ... &`) starts with SIGINT ignored, and Python then keeps
    # it ignored: Ctrl-C or kill -INT would not stop the command or clean up its outputs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in args or os.environ.get("MKSGN_DEBUG") == "1"
    args = [a for a in args if a != DEBUG_FLAG]
    try:
        cli.main(args=args, prog_name="mksgn", standalone_mode=False)
    except click.exceptions.Exit as stop:
        end_process(stop.exit_code)
    except click.ClickException as usage:  # usage errors: click's own message, exit 2
        usage.show()
        end_process(usage.exit_code)
    except Interrupted as stop:
        click.echo(f"Error: interrupted; no output was left half-written; {stop}", err=True)
        end_process(130)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("Error: interrupted; no output was left half-written.", err=True)
        end_process(130)
    except MksgnError as error:
        if debug:
            traceback.print_exc()
        # One line, whatever the message holds (a value from a file may span lines).
        click.echo(f"Error: {' '.join(str(error).split())}", err=True)
        end_process(1)
    except Exception as error:  # a bug or an unforeseen condition: still one line
        if debug:
            traceback.print_exc()
        click.echo(
            f"Error: {type(error).__name__}: {error} (rerun with {DEBUG_FLAG} for the traceback)",
            err=True,
        )
        end_process(1)


if __name__ == "__main__":  # `python -m mksgn.cli`, e.g. under torchrun
    main()
