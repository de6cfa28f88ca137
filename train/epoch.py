"""One epoch of `mksgn train`: the state a run carries from epoch to epoch, the loss of a batch
(TrainingObjective), the training pass, MK-SGN's MI-guided fusion weights and the evaluation on
the test split, each summed over the processes of a DistributedDataParallel run.

Reproducibility: everything random in epoch e (shuffling, augmentation, dropout) is drawn from
generators seeded by (seed, e) -- and, for augmentation, the sample index -- so a run resumed
after epoch e, or split over several processes, draws exactly what an uninterrupted
single-process run draws.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DistributedSampler, Subset
from tqdm import tqdm

from mksgn.train.batch_statistics import recalibrate_batch_norm
from mksgn.train.distillation import DistillationLoss
from mksgn.train.distributed import ProcessContext, all_gather_rows, all_reduce_sum
from mksgn.train.evaluate import EvaluationTally, evaluate_model
from mksgn.train.loading import SampledSplit, make_loader
from mksgn.train.models.config import ModelConfig
from mksgn.train.models.output import ModelOutput
from mksgn.train.mutual_information import modality_mi_weights
from mksgn.train.settings import TrainSettings


class TrainingObjective(nn.Module):
    """Everything trained, as one module (one DDP wrapper): the model and, with distillation,
    the feature translation inside the distillation loss. forward() returns (loss, output)."""

    def __init__(self, model: nn.Module, distillation: DistillationLoss | None) -> None:
        super().__init__()
        self.model = model
        self.distillation = distillation

    def forward(
        self, inputs: torch.Tensor, labels: torch.Tensor, teacher_out: ModelOutput | None = None
    ) -> tuple[torch.Tensor, ModelOutput]:
        """Loss of one batch and the student's output."""
        out = self.model(inputs)
        if self.distillation is None or teacher_out is None:
            return F.cross_entropy(out.logits, labels), out
        loss, _ = self.distillation(out, teacher_out, labels)
        return loss, out


def epoch_seed(seed: int, epoch: int) -> int:
    """The torch seed of one epoch, a function of (seed, epoch) only."""
    return int(np.random.SeedSequence((seed, epoch)).generate_state(1)[0])


@dataclass
class RunState:
    """Objects a run carries from epoch to epoch."""

    config: ModelConfig
    settings: TrainSettings
    context: ProcessContext
    device: torch.device
    model: nn.Module
    objective: nn.Module  # TrainingObjective, DDP-wrapped when distributed
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    teacher: nn.Module | None
    train_set: SampledSplit
    train_sampler: DistributedSampler
    test_set: SampledSplit
    out_dir: Path
    extra: dict[str, Any]

    @property
    def distillation(self) -> DistillationLoss | None:
        """The distillation loss of this run, if any."""
        objective = self.objective.module if self.context.distributed else self.objective
        return objective.distillation


def run_epoch(state: RunState, epoch: int, progress: bool) -> dict[str, Any]:
    """Train one epoch, update MK-SGN's fusion weights, evaluate; returns the epoch's metrics."""
    started = time.perf_counter()
    settings, context = state.settings, state.context
    lr = state.optimizer.param_groups[0]["lr"]
    state.train_sampler.set_epoch(epoch)
    state.train_set.set_epoch(epoch)
    torch.manual_seed(epoch_seed(settings.seed, epoch) + context.rank)
    loader = make_loader(
        state.train_set,
        settings.batch_size // context.world_size,
        shuffle=False,
        seed=epoch_seed(settings.seed, epoch),
        workers=settings.workers,
        sampler=state.train_sampler,
    )
    collect_counts = state.config.model == "mk-sgn"
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, samples
    rate_sums: dict[str, float] = {}
    counts, labels_seen = [], []
    state.objective.train()
    bar = tqdm(
        total=len(loader),
        desc=f"epoch {epoch + 1}/{settings.epochs}",
        disable=not progress,
        file=sys.stderr,
        leave=True,
    )
    try:
        for inputs, labels in loader:
            inputs, labels = inputs.to(state.device), labels.to(state.device)
            teacher_out = None
            if state.teacher is not None:
                with torch.no_grad():
                    teacher_out = state.teacher(inputs)
            loss, out = state.objective(inputs, labels, teacher_out)
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
            batch = len(labels)
            correct = int((out.logits.detach().argmax(1) == labels).sum())
            totals += torch.tensor(
                [float(loss.detach()) * batch, correct, batch], dtype=torch.float64
            )
            for name, rate in out.firing_rates().items():
                rate_sums[name] = rate_sums.get(name, 0.0) + rate * batch
            if collect_counts:
                counts.append(first_layer_counts(out, state.config).cpu())
                labels_seen.append(labels.cpu())
            bar.update(1)
            bar.set_postfix(loss=f"{totals[0] / totals[2]:.3f}", acc=f"{totals[1] / totals[2]:.3f}")
        state.scheduler.step()
        mi_weights = None
        if collect_counts:
            mi_weights = update_fusion_weights(state, counts, labels_seen)
        totals = all_reduce_sum(totals, context)
        rates = reduce_rates(rate_sums, context)
        recalibrate_batch_norm(
            state.model, loader, state.device, settings.bn_calibration_samples // context.world_size
        )
        test = evaluate_split(state)
        bar.set_postfix(
            loss=f"{totals[0] / totals[2]:.3f}",
            acc=f"{totals[1] / totals[2]:.3f}",
            test=f"{test['top1']:.3f}",
        )
    finally:
        bar.close()
    samples = float(totals[2])
    metrics: dict[str, Any] = {
        "epoch": epoch + 1,
        "train_loss": float(totals[0]) / samples,
        "train_acc": float(totals[1]) / samples,
        "test_acc": test["top1"],
        "test_top5": test["top5"],
        "lr": lr,
        "seconds": time.perf_counter() - started,
        "firing_rates": {name: value / samples for name, value in rates.items()},
    }
    if mi_weights is not None:
        metrics["mi_weights"] = [float(w) for w in mi_weights]
    return metrics


def first_layer_counts(out: ModelOutput, config: ModelConfig) -> torch.Tensor:
    """(N, modalities, channels) spike counts of MK-SGN's first layer, summed over time, frames
    and nodes (the channel groups of layer1 are the modalities, in MODALITIES order)."""
    spikes = out.spikes["layer1"].detach()
    per_channel = spikes.sum(dim=(0, 3, 4))  # (N, M·C1)
    return per_channel.unflatten(1, (-1, config.layers[0].channels))


def update_fusion_weights(
    state: RunState, counts: list[torch.Tensor], labels: list[torch.Tensor]
) -> np.ndarray:
    """Set MK-SGN's `fusion.mi_weight` from the epoch's first-layer spike counts (all processes)."""
    all_counts = all_gather_rows(torch.cat(counts), state.context).numpy()
    all_labels = all_gather_rows(torch.cat(labels), state.context).numpy()
    weights = modality_mi_weights(
        all_counts,
        all_labels,
        state.config.num_classes,
        bins=state.settings.mi_bins,
        mix=state.settings.mi_mix,
    )
    fusion = state.model.fusion
    with torch.no_grad():
        fusion.mi_weight.copy_(torch.as_tensor(weights, dtype=fusion.mi_weight.dtype))
    return weights


def reduce_rates(rate_sums: dict[str, float], context: ProcessContext) -> dict[str, float]:
    """Sum per-layer firing-rate sums over processes (same layer names everywhere)."""
    if not rate_sums:
        return {}
    names = list(rate_sums)
    summed = all_reduce_sum(
        torch.tensor([rate_sums[n] for n in names], dtype=torch.float64), context
    )
    return dict(zip(names, summed.tolist(), strict=True))


def evaluate_split(state: RunState) -> dict[str, float]:
    """Top-1/top-5 on the test split, each process evaluating every world_size-th sample."""
    context = state.context
    if len(state.test_set) == 0:
        return {"top1": float("nan"), "top5": float("nan")}
    shard = Subset(
        state.test_set, list(range(context.rank, len(state.test_set), context.world_size))
    )
    loader = make_loader(shard, state.settings.eval_batch_size, False, 0, state.settings.workers)
    tally = evaluate_model(state.model, loader, state.config.num_classes, state.device)
    merged = merge_tally(tally, context)
    return {"top1": merged.result().top1, "top5": merged.result().top5}


def merge_tally(tally: EvaluationTally, context: ProcessContext) -> EvaluationTally:
    """Sum a tally's counts over processes."""
    if not context.distributed:
        return tally
    flat = torch.tensor([*tally.confusion.ravel().tolist(), tally.top5_hits], dtype=torch.int64)
    flat = all_reduce_sum(flat, context)
    merged = EvaluationTally(tally.num_classes)
    merged.confusion = flat[:-1].numpy().reshape(tally.confusion.shape)
    merged.top5_hits = int(flat[-1])
    return merged
