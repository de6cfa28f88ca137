"""What the training benchmarks share: a synthetic set and its GCN teacher, made once per output
folder, and a results log (one JSON object per line) that lets an interrupted benchmark continue
where it stopped."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from mksgn import run_files

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
