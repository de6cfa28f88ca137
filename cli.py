"""The `mksgn` command line: a thin click layer over mksgn.train, .convert, .targets, .benchmarks."""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import click

from mksgn import __version__
from mksgn.errors import MksgnError

DEBUG_FLAG = "--debug"


def emit_json(obj: object) -> None:
    """Print exactly one JSON object on stdout (for commands run with --json)."""
    click.echo(json.dumps(obj, indent=2, sort_keys=False))


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=f"Add {DEBUG_FLAG} anywhere (or set MKSGN_DEBUG=1) to see tracebacks of errors.",
)
@click.version_option(__version__, prog_name="mksgn")
def cli() -> None:
    """Spiking graph convolutional networks for skeleton action recognition:
    train in snnTorch, export to NIR, simulate on Lava (Loihi 2), report energy."""


@cli.group()
def data() -> None:
    """Skeleton datasets: synthesize, prepare NTU RGB+D, inspect."""


@data.command("synth")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Output .npz (CTR-GCN format) or, with --format skeleton, a folder.",
)
@click.option(
    "--classes",
    default=8,
    show_default=True,
    type=click.IntRange(2, None),
    help="Number of action classes.",
)
@click.option(
    "--samples-per-class",
    default=40,
    show_default=True,
    type=click.IntRange(2, None),
    help="Samples per class (split between train and test by performer).",
)
@click.option(
    "--frames",
    default=64,
    show_default=True,
    type=click.IntRange(8, 300),
    help="Frames per sample.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
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
    if as_json:
        emit_json(summary)
    else:
        click.echo(
            f"Wrote {summary['samples']} samples ({summary['classes']} classes, "
            f"{summary['train']} train / {summary['test']} test) to {out}"
        )


@data.command("prepare")
@click.option(
    "--raw",
    "raw_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of NTU RGB+D .skeleton files (searched recursively).",
)
@click.option(
    "--benchmark",
    required=True,
    type=click.Choice(["ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset"]),
    help="Which benchmark's train/test split to write.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output .npz in the CTR-GCN format.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Stop with an error at the first malformed file instead of skipping it.",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, None),
    help="Parser processes [default: number of CPUs].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def data_prepare(
    raw_dir: Path, benchmark: str, out: Path, strict: bool, workers: int | None, as_json: bool
) -> None:
    """Turn raw NTU RGB+D .skeleton files into a CTR-GCN npz for one benchmark."""
    from mksgn.train.data.prepare import prepare_ntu

    summary = prepare_ntu(
        raw_dir, benchmark, out, strict=strict, workers=workers, progress=not as_json
    )
    if as_json:
        emit_json(summary.to_dict())
    else:
        click.echo(summary.format())


@data.command("inspect")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def data_inspect(path: Path, as_json: bool) -> None:
    """Describe a skeleton dataset: format, samples per split and class, frames, bodies, ranges."""
    from mksgn.train.data.inspect import format_inspection, inspect_dataset

    info = inspect_dataset(path)
    if as_json:
        emit_json(info)
    else:
        click.echo(format_inspection(info))


@cli.command()
@click.option(
    "--out",
    "out",
    default=Path("demo-out"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for everything the demo writes.",
)
@click.option("--quick", is_flag=True, help="A smaller synthetic set, for a fast check.")
def demo(out: Path, quick: bool) -> None:
    """Run the pipeline on the built-in synthetic skeleton data."""
    from mksgn.train.data import synthetic
    from mksgn.train.data.inspect import format_inspection, inspect_dataset

    size = dict(classes=6, samples_per_class=12, frames=32) if quick else {}
    dataset = synthetic.generate(seed=0, **size)
    data_path = out / "synthetic.npz"
    synthetic.write_npz(dataset, data_path)
    click.echo(f"[1/1] synthetic skeleton set -> {data_path}")
    click.echo(format_inspection(inspect_dataset(data_path)))


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the click app with the project's error convention."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in args or os.environ.get("MKSGN_DEBUG") == "1"
    args = [a for a in args if a != DEBUG_FLAG]
    try:
        cli.main(args=args, prog_name="mksgn", standalone_mode=False)
    except click.exceptions.Exit as stop:
        sys.exit(stop.exit_code)
    except click.ClickException as usage:  # usage errors: click's own message, exit 2
        usage.show()
        sys.exit(usage.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("Error: interrupted; no output was left half-written.", err=True)
        sys.exit(130)
    except MksgnError as error:
        if debug:
            traceback.print_exc()
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)
    except Exception as error:  # a bug or an unforeseen condition: still one line
        if debug:
            traceback.print_exc()
        click.echo(
            f"Error: {type(error).__name__}: {error} (rerun with {DEBUG_FLAG} for the traceback)",
            err=True,
        )
        sys.exit(1)
