"""`mksgn train`: the training loop (optimiser and schedule, CTR-GCN augmentation, optional knowledge
distillation, MI-guided fusion weights for MK-SGN, per-epoch evaluation, atomic checkpoints,
exact resume and DistributedDataParallel under torchrun).

Reproducibility: everything random in epoch e (shuffling, augmentation, dropout) is drawn from
generators seeded by (seed, e) -- and, for augmentation, the sample index -- so a run resumed
after epoch e, or split over several processes, draws exactly what an uninterrupted
single-process run draws.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, Subset
from tqdm import tqdm

from mksgn import run_files
from mksgn.atomic import atomic_open
from mksgn.errors import MksgnError
from mksgn.train.batch_statistics import recalibrate_batch_norm
from mksgn.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from mksgn.train.data.formats import open_dataset
from mksgn.train.data.layout import SkeletonLayout
from mksgn.train.distillation import (
    DEFAULT_STUDENT_LAYER,
    DistillationLoss,
    DistillationWeights,
    build_translation,
    default_teacher_layer,
    load_teacher,
)
from mksgn.train.distributed import (
    ProcessContext,
    all_gather_rows,
    all_reduce_sum,
    peer_failure,
    start_processes,
    stop_processes,
    synchronise_batch_norm,
)
from mksgn.train.evaluate import EvaluationTally, evaluate_model
from mksgn.train.history import read_history, write_history
from mksgn.train.loading import (
    SampledSplit,
    check_data_fits,
    make_loader,
    open_split,
    resolve_device,
)
from mksgn.train.models import build_model
from mksgn.train.models.config import ModelConfig, preset_config
from mksgn.train.models.cost import dense_macs_per_sample, parameter_count
from mksgn.train.models.output import ModelOutput
from mksgn.train.mutual_information import modality_mi_weights

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "step")
DEFAULT_LR = {"adamw": 2e-3, "sgd": 0.05}
DEFAULT_WEIGHT_DECAY = {"adamw": 1e-2, "sgd": 4e-4}
# Settings that may change between a run and its resumption without changing what it computes
# (epochs: a resumed run may be extended; the schedule then follows the new length).
RESUMABLE_CHANGES = frozenset({"epochs", "device", "workers", "eval_batch_size"})


@dataclass
class TrainSettings:
    """Optimisation, schedule, reproducibility, device and distillation settings of a run.

    `lr` and `weight_decay` default (None) per optimiser: AdamW 2e-3 / 1e-2, SGD 0.05 / 4e-4
    (SGD uses Nesterov momentum 0.9). The step schedule multiplies the rate by `step_gamma` at
    each fraction of the epochs in `step_milestones`; warm-up ramps it linearly over the first
    `warmup_epochs` epochs. `mi_bins` and `mi_mix` set MK-SGN's fusion weights
    (see train/mutual_information.py).
    """

    epochs: int = 30
    batch_size: int = 16
    lr: float | None = None
    optimizer: str = "adamw"
    momentum: float = 0.9
    weight_decay: float | None = None
    schedule: str = "cosine"
    warmup_epochs: int = 1
    step_milestones: tuple[float, ...] = (0.6, 0.8)
    step_gamma: float = 0.1
    seed: int = 0
    benchmark: str | None = None  # the split table to use in a multi-benchmark PYSKL pickle
    device: str = "cpu"
    workers: int = 0
    eval_batch_size: int = 64
    # Synthetic set, tiny MK-SGN, 30 epochs: 1.0 / 1.0 / T = 4 gave 74.4 % against 81.9 % without
    # a teacher (seed 0). These weights, seeds 0-5 (benchmarks/distillation.py, class-sorted set):
    # 79.8 ± 4.2 % with the teacher, 78.3 ± 4.3 % without, +1.5 points on average but -5.0 to
    # +11.8 per seed: distillation does not hurt; that it helps is within the seed spread.
    kd_temperature: float = 2.0
    kd_weight: float = 0.5
    feature_weight: float = 0.1
    student_layer: str = DEFAULT_STUDENT_LAYER
    teacher_layer: str | None = None
    mi_bins: int = 8
    mi_mix: float = 0.5
    # Augmentation: random rotation up to this many radians per axis, random scaling by up to
    # ± this fraction (CTR-GCN's NTU recipe: 0.3 rad, no scaling).
    rotation: float = 0.3
    scale: float = 0.0
    # Training samples whose batch statistics replace the running ones before each evaluation
    # (train/batch_statistics.py); 0 keeps torch's running averages.
    bn_calibration_samples: int = 512

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise MksgnError(f"unknown optimizer {self.optimizer!r}; choose one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise MksgnError(f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")
        if self.epochs < 1 or self.batch_size < 1:
            raise MksgnError("epochs and batch size must be at least 1")
        if not 0 <= self.warmup_epochs < max(self.epochs, 1) + 1:
            raise MksgnError(f"warm-up of {self.warmup_epochs} epochs must be >= 0")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.optimizer]
        if self.weight_decay is None:
            self.weight_decay = DEFAULT_WEIGHT_DECAY[self.optimizer]
        if self.lr <= 0:
            raise MksgnError(f"learning rate must be positive, got {self.lr}")
        if self.rotation < 0 or not 0 <= self.scale < 1:
            raise MksgnError(
                f"rotation must be >= 0 and scale in [0, 1); got {self.rotation}, {self.scale}"
            )
        if self.bn_calibration_samples < 0:
            raise MksgnError(
                f"bn_calibration_samples must be >= 0, got {self.bn_calibration_samples}"
            )
        self.step_milestones = tuple(self.step_milestones)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for config.json and the checkpoint."""
        data = dataclasses.asdict(self)
        data["step_milestones"] = list(self.step_milestones)
        return data


def config_for_data(
    data_path: str | Path,
    model: str,
    preset: str,
    time_steps: int = 4,
    frames: int | None = None,
    layout: SkeletonLayout | None = None,
    benchmark: str | None = None,
) -> ModelConfig:
    """A preset model config sized for a dataset: its class count, bodies per sample and
    skeleton layout (the one it records, else `layout`, else the default for its joints)."""
    source = open_dataset(data_path, benchmark, layout)
    _, _, bodies = source.split_shape("train")
    config = preset_config(model, preset, source.num_classes, time_steps=time_steps, frames=frames)
    return dataclasses.replace(config, bodies=bodies, layout=source.layout.to_dict())


def learning_rate_factor(epoch: int, settings: TrainSettings) -> float:
    """Multiplier of the base rate during `epoch` (0-based): linear warm-up, then cosine or step."""
    warmup = settings.warmup_epochs
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    if settings.schedule == "cosine":
        span = max(settings.epochs - warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup) / span))
    passed = sum(epoch >= round(m * settings.epochs) for m in settings.step_milestones)
    return settings.step_gamma**passed


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


@contextlib.contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """Ask torch for deterministic kernels (warning, not failing, where none exists)."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


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


def train(
    data_path: str | Path,
    config: ModelConfig,
    settings: TrainSettings,
    out_dir: str | Path,
    teacher_checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train `config`'s model on the dataset at `data_path`; returns the last epoch's metrics.

    `out_dir` receives config.json, metrics.jsonl and checkpoint.pt (after every epoch). Under
    torchrun (WORLD_SIZE > 1) the processes share the global batch and only rank 0 writes.
    """
    resolve_device(settings.device)  # fail on a missing GPU before joining a process group
    context = start_processes(settings.device)
    try:
        device = resolve_device(settings.device, context.local_rank)
        with deterministic_algorithms():
            metrics = run_training(
                Path(data_path),
                config,
                settings,
                Path(out_dir),
                context,
                device,
                None if teacher_checkpoint is None else Path(teacher_checkpoint),
                resume,
                progress,
            )
    except BaseException as error:
        stop_processes(context, finished=False)
        if context.distributed and peer_failure(error):
            raise peer_failure_error(error, Path(out_dir)) from error
        raise
    stop_processes(context)
    return metrics


def peer_failure_error(error: BaseException, out_dir: Path) -> MksgnError:
    """The Error a process reports when another process of its torchrun job has ended."""
    detail = (str(error).strip().splitlines() or [type(error).__name__])[0]
    checkpoint = out_dir / run_files.CHECKPOINT
    after = (
        f"--resume continues from {checkpoint}, the last complete epoch"
        if checkpoint.exists()
        else "no epoch was complete, so start again"
    )
    return MksgnError(
        f"another process of this torchrun job ended during training ({detail}); {after}"
    )


def run_training(
    data_path: Path,
    config: ModelConfig,
    settings: TrainSettings,
    out_dir: Path,
    context: ProcessContext,
    device: torch.device,
    teacher_checkpoint: Path | None,
    resume: bool,
    progress: bool,
) -> dict[str, Any]:
    """The body of `train` once the process group and device are known."""
    checkpoint_path = out_dir / run_files.CHECKPOINT
    checkpoint = prepare_out_dir(out_dir, resume)
    if settings.batch_size % context.world_size:
        raise MksgnError(
            f"batch size {settings.batch_size} does not split over {context.world_size} "
            "processes; use a multiple of the process count"
        )
    state = build_run(data_path, config, settings, out_dir, context, device, teacher_checkpoint)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if checkpoint is not None:
        start_epoch = restore(state, checkpoint, teacher_checkpoint)
        history = read_history(out_dir / run_files.METRICS, start_epoch)
        if checkpoint.metrics and (not history or history[-1].get("epoch") != start_epoch):
            history.append(checkpoint.metrics)
    if context.is_main:
        write_config_json(out_dir / run_files.CONFIG, state, data_path, teacher_checkpoint)
    for epoch in range(start_epoch, settings.epochs):
        metrics = run_epoch(state, epoch, progress and context.is_main)
        history.append(metrics)
        if context.is_main:
            # Checkpoint first: if the log's write then fails (disk full), the log lags the
            # checkpoint, and resuming restores the missing line from the checkpoint's metrics;
            # the other order left a log naming an epoch that no checkpoint holds.
            save_state(checkpoint_path, state, epoch + 1, metrics)
            write_history(out_dir / run_files.METRICS, history)
    if history:
        return history[-1]
    return dict(checkpoint.metrics) if checkpoint is not None else {}


def prepare_out_dir(out_dir: Path, resume: bool) -> Checkpoint | None:
    """The checkpoint to resume from, refusing to overwrite a run or to resume nothing."""
    checkpoint_path = out_dir / run_files.CHECKPOINT
    if resume:
        if not checkpoint_path.is_file():
            raise MksgnError(
                f"--resume: {checkpoint_path} does not exist; start a run without --resume"
            )
        return load_checkpoint(checkpoint_path)
    if checkpoint_path.exists():
        raise MksgnError(
            f"{out_dir} already holds a training run ({checkpoint_path}); pass --resume to "
            "continue it or choose another --out"
        )
    return None


def build_run(
    data_path: Path,
    config: ModelConfig,
    settings: TrainSettings,
    out_dir: Path,
    context: ProcessContext,
    device: torch.device,
    teacher_checkpoint: Path | None,
) -> RunState:
    """Data, model (+ teacher and translation), optimiser and schedule of a fresh run."""
    train_set = open_split(
        data_path,
        "train",
        config,
        train=True,
        seed=settings.seed,
        rotation=settings.rotation,
        scale=settings.scale,
        benchmark=settings.benchmark,
    )
    test_set = open_split(data_path, "test", config, False, benchmark=settings.benchmark)
    check_data_fits(train_set, data_path, config)
    if len(train_set) == 0:
        raise MksgnError(f"{data_path}: the train split is empty; nothing to train on")
    torch.manual_seed(settings.seed)  # same initial weights in every process and every run
    model = build_model(config).to(device)
    teacher = None
    distillation = None
    extra: dict[str, Any] = {"settings": settings.to_dict()}
    if teacher_checkpoint is not None:
        if config.model == "gcn":
            raise MksgnError(
                "--teacher distils a GCN into a spiking student; --model gcn takes no teacher"
            )
        teacher = load_teacher(teacher_checkpoint, config.num_classes, config).to(device)
        distillation = make_distillation(model, teacher, config, settings, device)
        extra["teacher_checkpoint"] = str(teacher_checkpoint)
        extra["student_layer"] = distillation.student_layer
        extra["teacher_layer"] = distillation.teacher_layer
    objective: nn.Module = TrainingObjective(model, distillation).to(device)
    if context.distributed:
        objective = synchronise_batch_norm(objective, settings.device)
        objective = DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = make_optimizer(objective.parameters(), settings)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: learning_rate_factor(epoch, settings)
    )
    sampler = DistributedSampler(
        train_set,
        num_replicas=context.world_size,
        rank=context.rank,
        shuffle=True,
        seed=settings.seed,
    )
    return RunState(
        config=config,
        settings=settings,
        context=context,
        device=device,
        model=model,
        objective=objective,
        optimizer=optimizer,
        scheduler=scheduler,
        teacher=teacher,
        train_set=train_set,
        train_sampler=sampler,
        test_set=test_set,
        out_dir=out_dir,
        extra=extra,
    )


@torch.no_grad()
def make_distillation(
    model: nn.Module,
    teacher: nn.Module,
    config: ModelConfig,
    settings: TrainSettings,
    device: torch.device,
) -> DistillationLoss:
    """Distillation loss with a translation sized by one probe pass of student and teacher."""
    probe = torch.zeros(2, 3, config.frames, config.joints, config.bodies, device=device)
    was_training = model.training
    model.eval()
    student_features = model(probe).features
    model.train(was_training)
    teacher_features = teacher(probe).features
    if settings.student_layer not in student_features:
        raise MksgnError(
            f"student layer {settings.student_layer!r} does not exist; choose one of "
            f"{', '.join(student_features)}"
        )
    student_feature = student_features[settings.student_layer]
    teacher_layer = settings.teacher_layer or default_teacher_layer(
        teacher_features, student_feature
    )
    if teacher_layer not in teacher_features:
        raise MksgnError(
            f"teacher layer {teacher_layer!r} does not exist; choose one of "
            f"{', '.join(teacher_features)}"
        )
    translation = build_translation(student_feature, teacher_features[teacher_layer])
    weights = DistillationWeights(
        temperature=settings.kd_temperature,
        kd_weight=settings.kd_weight,
        feature_weight=settings.feature_weight,
    )
    return DistillationLoss(translation, weights, settings.student_layer, teacher_layer)


def make_optimizer(parameters: Any, settings: TrainSettings) -> torch.optim.Optimizer:
    """AdamW, or SGD with Nesterov momentum."""
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=settings.lr,
            momentum=settings.momentum,
            nesterov=True,
            weight_decay=settings.weight_decay,
        )
    return torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)


def restore(state: RunState, checkpoint: Checkpoint, teacher_checkpoint: Path | None) -> int:
    """Load weights, optimiser and schedule from a checkpoint; returns the epochs already done."""
    path = checkpoint.path
    if checkpoint.config != state.config:
        changed = [
            name
            for name, value in state.config.to_dict().items()
            if checkpoint.config.to_dict().get(name) != value
        ]
        raise MksgnError(
            f"--resume: {path} holds a model configured differently ({', '.join(changed)}); "
            "resume with the same --model, --preset, --frames and --time-steps"
        )
    saved = checkpoint.extra.get("settings", {})
    changed = [
        name
        for name, value in state.settings.to_dict().items()
        if name not in RESUMABLE_CHANGES and name in saved and saved[name] != value
    ]
    if changed:
        described = ", ".join(
            f"{n} was {saved[n]!r}, now {getattr(state.settings, n)!r}" for n in changed
        )
        raise MksgnError(f"--resume: {path} was trained with other settings ({described})")
    had_teacher = "translation_state" in checkpoint.extra
    if had_teacher != (teacher_checkpoint is not None):
        raise MksgnError(
            f"--resume: {path} was trained "
            + ("with --teacher; pass the same --teacher" if had_teacher else "without --teacher")
        )
    state.model.load_state_dict(checkpoint.model_state)
    if state.distillation is not None:
        state.distillation.translation.load_state_dict(checkpoint.extra["translation_state"])
    if checkpoint.epoch > state.settings.epochs:
        raise MksgnError(
            f"--resume: {path} has already trained {checkpoint.epoch} epochs; --epochs "
            f"{state.settings.epochs} would shorten the run: leave --epochs out to keep its plan, "
            "or give more to extend it"
        )
    if checkpoint.optimizer_state is not None:
        state.optimizer.load_state_dict(checkpoint.optimizer_state)
    if checkpoint.scheduler_state is not None:
        state.scheduler.load_state_dict(checkpoint.scheduler_state)
    # The saved rate is the last one of the saved plan (0 at the end of a cosine): an extended
    # run goes on at the rate its new plan gives the next epoch (same plan: the same rate).
    for group, base in zip(state.optimizer.param_groups, state.scheduler.base_lrs, strict=True):
        group["lr"] = base * learning_rate_factor(checkpoint.epoch, state.settings)
    if "torch" in checkpoint.rng_state:
        torch.set_rng_state(checkpoint.rng_state["torch"])
    return checkpoint.epoch


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


def save_state(path: Path, state: RunState, epochs_done: int, metrics: dict[str, Any]) -> None:
    """Checkpoint after an epoch (atomic: Ctrl-C leaves the previous one intact)."""
    extra = dict(state.extra)
    if state.distillation is not None:
        extra["translation_state"] = {
            name: value.detach().cpu()
            for name, value in state.distillation.translation.state_dict().items()
        }
    save_checkpoint(
        path,
        config=state.config,
        model_state=state.model.state_dict(),
        optimizer_state=state.optimizer.state_dict(),
        scheduler_state=state.scheduler.state_dict(),
        epoch=epochs_done,
        metrics=metrics,
        rng_state={"torch": torch.get_rng_state()},
        extra=extra,
    )


def write_config_json(
    path: Path, state: RunState, data_path: Path, teacher_checkpoint: Path | None
) -> None:
    """config.json: the model config and the settings of the run."""
    document = {
        "model": state.config.to_dict(),
        "settings": state.settings.to_dict(),
        "data": str(data_path),
        "teacher": None if teacher_checkpoint is None else str(teacher_checkpoint),
        "distillation_layers": (
            None
            if state.distillation is None
            else {
                "student": state.distillation.student_layer,
                "teacher": state.distillation.teacher_layer,
            }
        ),
        "processes": state.context.world_size,
        "parameters": parameter_count(state.model),
        # A fresh model: the trained one may hold synchronised batch norms whose forward pass
        # would wait for the other ranks, and only rank 0 writes this file.
        "dense_macs_per_sample": dense_macs_per_sample(build_model(state.config), state.config),
    }
    with atomic_open(path) as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
