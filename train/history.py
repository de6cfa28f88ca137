"""A training run's history: metrics.jsonl, one JSON object per epoch (read by resume, the report
and the benchmarks; written atomically by the training loop). No torch here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mksgn.atomic import atomic_open
from mksgn.errors import MksgnError


def read_history(path: Path, epochs_done: int | None = None) -> list[dict[str, Any]]:
    """metrics.jsonl, one record per epoch; with `epochs_done`, only the epochs a checkpoint
    covers (later lines, from a run interrupted after its last save, are dropped)."""
    if not path.is_file():
        return []
    history = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise MksgnError(
                f"{path} line {number} is not JSON; delete the line or the file"
            ) from None
        if epochs_done is None or record.get("epoch", 0) <= epochs_done:
            history.append(record)
    return history


def write_history(path: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite metrics.jsonl atomically, one JSON object per epoch."""
    with atomic_open(path) as handle:
        for record in history:
            handle.write(json.dumps(record) + "\n")
