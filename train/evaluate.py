"""Evaluation of a model on a dataset split: top-1/top-5, per-class accuracy, confusion matrix and
the average firing rate of every spiking layer."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from mksgn.diagnostics import output_warnings, silent_layer_warnings
from mksgn.errors import MksgnError
from mksgn.train.checkpoint import load_model
from mksgn.train.loading import (
    check_data_fits,
    make_loader,
    open_split,
    resolve_device,
    short_clip_count,
)
from mksgn.train.models.cost import dense_macs_per_sample, parameter_count


@dataclass
class EvaluationResult:
    """Accuracy figures (fractions) and firing rates of one pass over a split."""

    samples: int
    top1: float
    top5: float
    per_class_accuracy: list[float | None]
    confusion: list[list[int]]
    firing_rates: dict[str, float] = field(default_factory=dict)
    class_names: list[str] | None = None
    parameters: int | None = None
    dense_macs_per_sample: int | None = None
    warnings: list[str] = field(default_factory=list)
    resampled_clips: int | None = None  # clips shorter than the model's frames, stretched

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (keys as documented for `mksgn evaluate --json`)."""
        # The JSON key is the documented "confusion_matrix"; the field keeps the short name.
        return {
            "confusion_matrix" if name == "confusion" else name: value
            for name, value in asdict(self).items()
        }


class EvaluationTally:
    """Accumulates predictions batch by batch (also across processes, via `merge`)."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.top5_hits = 0
        self.rate_sums: dict[str, float] = {}

    @property
    def samples(self) -> int:
        """Samples counted so far."""
        return int(self.confusion.sum())

    def add(self, logits: torch.Tensor, labels: torch.Tensor, rates: dict[str, float]) -> None:
        """Count one batch: logits (N, classes), labels (N,), batch-mean firing rates."""
        labels_np = labels.cpu().numpy()
        predicted = logits.argmax(dim=1).cpu().numpy()
        np.add.at(self.confusion, (labels_np, predicted), 1)
        k = min(5, self.num_classes)
        top = logits.topk(k, dim=1).indices.cpu()
        self.top5_hits += int((top == labels.cpu()[:, None]).any(dim=1).sum())
        for name, rate in rates.items():
            self.rate_sums[name] = self.rate_sums.get(name, 0.0) + rate * len(labels_np)

    def result(self) -> EvaluationResult:
        """Fractions from the counts (per-class accuracy None for a class without samples)."""
        total = max(self.samples, 1)
        per_class = self.confusion.sum(axis=1)
        return EvaluationResult(
            samples=self.samples,
            top1=float(np.trace(self.confusion)) / total,
            top5=self.top5_hits / total,
            per_class_accuracy=[
                float(self.confusion[c, c]) / int(per_class[c]) if per_class[c] else None
                for c in range(self.num_classes)
            ],
            confusion=self.confusion.tolist(),
            firing_rates={name: value / total for name, value in self.rate_sums.items()},
        )


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    device: torch.device | str = "cpu",
    progress: bool = False,
    description: str = "evaluate",
) -> EvaluationTally:
    """Run the model in eval mode over (inputs, labels) batches and tally the predictions."""
    was_training = model.training
    model.eval()
    tally = EvaluationTally(num_classes)
    try:
        for inputs, labels in tqdm(
            batches, desc=description, disable=not progress, file=sys.stderr, leave=False
        ):
            out = model(inputs.to(device))
            tally.add(out.logits.float(), labels, out.firing_rates())
    finally:
        model.train(was_training)
    return tally


def evaluate_checkpoint(
    checkpoint_path: str | Path,
    data_path: str | Path,
    split: str = "test",
    batch_size: int = 32,
    device: str = "cpu",
    progress: bool = True,
    benchmark: str | None = None,
) -> EvaluationResult:
    """Load a checkpoint and evaluate it on a split of a dataset (test-time transform)."""
    torch_device = resolve_device(device)
    model, config, _ = load_model(checkpoint_path)
    model_source = f"the model in {checkpoint_path}"
    dataset = open_split(data_path, split, config, benchmark=benchmark, model_source=model_source)
    check_data_fits(dataset, data_path, config, checkpoint_path)
    if len(dataset) == 0:
        raise MksgnError(f"{data_path}: the {split} split has no samples to evaluate")
    loader = make_loader(dataset, batch_size, shuffle=False, seed=0, workers=0)
    tally = evaluate_model(
        model.to(torch_device), loader, config.num_classes, torch_device, progress=progress
    )
    result = tally.result()
    names = dataset.base.class_names
    result.class_names = list(names) if names else None
    result.parameters = parameter_count(model)
    result.dense_macs_per_sample = dense_macs_per_sample(model, config)
    predicted_per_class = np.asarray(result.confusion).sum(axis=0)
    predictions = np.repeat(np.arange(len(predicted_per_class)), predicted_per_class)
    result.warnings = silent_layer_warnings(result.firing_rates) + output_warnings(
        None, predictions
    )
    result.resampled_clips = short_clip_count(dataset.base.arrays.data, config.frames)
    return result


def format_evaluation(result: EvaluationResult) -> str:
    """Human-readable report: accuracies, per-class accuracy, confusion matrix, firing rates."""
    classes = len(result.per_class_accuracy)
    names = result.class_names or [str(c) for c in range(classes)]
    resampled = (
        f" ({result.resampled_clips} shorter than the model's frames, resampled)"
        if result.resampled_clips
        else ""
    )
    lines = [
        f"samples: {result.samples}{resampled}",
        f"top-1:   {result.top1:.4f}",
        f"top-5:   {result.top5:.4f}",
    ]
    if result.parameters is not None and result.dense_macs_per_sample is not None:
        lines.append(f"parameters: {result.parameters:,}")
        lines.append(f"dense MACs per sample: {result.dense_macs_per_sample:,}")
    lines.append("per-class accuracy:")
    width = max(len(n) for n in names)
    for name, accuracy in zip(names, result.per_class_accuracy, strict=True):
        shown = "  n/a" if accuracy is None else f"{accuracy:.3f}"
        lines.append(f"  {name:>{width}}  {shown}")
    cell = max(len(str(int(np.max(result.confusion)))), 3)
    lines.append("confusion matrix (rows: true class, columns: predicted):")
    for row in result.confusion:
        lines.append("  " + " ".join(f"{value:>{cell}}" for value in row))
    if result.firing_rates:
        lines.append("average firing rate (spikes per neuron per time step):")
        for name, rate in result.firing_rates.items():
            lines.append(f"  {name}: {rate:.4f}")
    return "\n".join(lines)
