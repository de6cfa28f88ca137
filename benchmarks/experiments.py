"""What the training benchmarks share: a synthetic set and its GCN teacher, made once per output
folder, and a results log (one JSON object per line) that lets an interrupted benchmark continue
where it stopped."""

from __future__ import annotations

import json
from pathlib import Path


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
    from mksgn.train.loop import TrainSettings, config_for_data, train

    out.mkdir(parents=True, exist_ok=True)
    data, teacher = out / "synthetic.npz", out / "gcn" / "checkpoint.pt"
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
