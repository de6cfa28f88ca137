"""What the training benchmarks share: a synthetic set and its GCN teacher, made once per output
folder, a results log (one JSON object per line) that lets an interrupted benchmark continue
where it stopped, and the summary each writes as JSON and Markdown."""

from __future__ import annotations

import json
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from mksgn import run_files
from mksgn.atomic import atomic_open

TRIO = ("gcn", "base-sgn", "mk-sgn")
TRIO_TITLES = {"gcn": "GCN teacher", "base-sgn": "Base-SGN", "mk-sgn": "MK-SGN (distilled)"}


def synthetic_with_teacher(
    out: Path,
    classes: int = 8,
    samples_per_class: int = 40,
    teacher_epochs: int = 30,
    frames: int | None = None,
) -> tuple[Path, Path]:
    """(dataset, teacher checkpoint) in `out`: the synthetic set (64-frame clips; the default is
    the demo's) and a tiny GCN trained on it at `frames` (None: the preset's), each made only if
    absent."""
    from mksgn.train.data import synthetic
    from mksgn.train.settings import TrainSettings, config_for_data
    from mksgn.train.training import train

    out.mkdir(parents=True, exist_ok=True)
    data, teacher = out / "synthetic.npz", out / "gcn" / run_files.CHECKPOINT
    if not data.exists():
        synthetic.write_npz(synthetic.generate(classes, samples_per_class, 64, seed=0), data)
    if not teacher.exists():
        config = config_for_data(data, "gcn", "tiny", frames=frames)
        train(data, config, TrainSettings(epochs=teacher_epochs), teacher.parent, progress=False)
    return data, teacher


def read_results(log: Path) -> list[dict]:
    """The records of a results log (none if it does not exist)."""
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def append_result(log: Path, record: dict) -> None:
    """Print one finished run and append it to the log."""
    print(json.dumps(record), flush=True)
    with open(log, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def run_logged(
    log: Path, done: list[dict], jobs: list[tuple[dict, Callable, tuple]], workers: int
) -> None:
    """Run each job (its fields, a function, its arguments) in a pool of `workers` processes
    (forkserver: no torch state inherited); as each finishes, append {**fields, **result} to
    the log and to `done`."""
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {
            pool.submit(function, *arguments): fields for fields, function, arguments in jobs
        }
        for future in as_completed(futures):
            record = {**futures[future], **future.result()}
            append_result(log, record)
            done.append(record)


def write_summary(out: Path, name: str, summary: dict, markdown: str) -> None:
    """OUT/NAME.json (the summary) and OUT/NAME.md (its Markdown), each written atomically."""
    with atomic_open(out / f"{name}.json") as handle:
        json.dump(summary, handle, indent=2, default=float)
        handle.write("\n")
    with atomic_open(out / f"{name}.md") as handle:
        handle.write(markdown)


def train_trio(
    data: Path,
    out: Path,
    epochs: int,
    teacher_epochs: int,
    settings: dict[str, object] | None = None,
    preset: str = "tiny",
    frames: int | None = None,
    reuse: bool = False,
) -> dict[str, dict]:
    """The GCN teacher, a Base-SGN and an MK-SGN distilled from that teacher, trained into
    out/<model> with TrainSettings(**settings) and evaluated on the test split: top-1, top-5 and
    wall time each. With `reuse`, a model whose checkpoint exists is evaluated, not retrained."""
    from mksgn.train.evaluate import evaluate_checkpoint
    from mksgn.train.settings import TrainSettings, config_for_data
    from mksgn.train.training import train

    results = {}
    for model in TRIO:
        started = time.perf_counter()
        run_dir = out / model
        teacher = out / "gcn" / run_files.CHECKPOINT if model == "mk-sgn" else None
        model_epochs = teacher_epochs if model == "gcn" else epochs
        if not (reuse and (run_dir / run_files.CHECKPOINT).exists()):
            config = config_for_data(data, model, preset, frames=frames)
            run_settings = TrainSettings(epochs=model_epochs, **(settings or {}))
            train(data, config, run_settings, run_dir, teacher, progress=False)
        evaluation = evaluate_checkpoint(run_dir / run_files.CHECKPOINT, data, progress=False)
        results[model] = {
            "top1": evaluation.top1,
            "top5": evaluation.top5,
            "test_samples": evaluation.samples,
            "epochs": model_epochs,
            "seconds": time.perf_counter() - started,
        }
        print(f"{out.name} {model}: test top-1 {evaluation.top1:.4f}", file=sys.stderr)
    return results


def spread(values: list[float]) -> str:
    """'mean ± standard deviation % (n = N)' of fractions, in percent."""
    mean = 100 * statistics.mean(values)
    deviation = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {deviation:.1f} % (n = {len(values)})"
