"""`mksgn train`: a run from start to end -- its output folder (config.json, metrics.jsonl, an
atomic checkpoint after every epoch), the data, model, optional distillation teacher, optimiser
and schedule it trains, exact resume from its checkpoint, and DistributedDataParallel under
torchrun. What a run is configured with is train/settings.py; one epoch's work is train/epoch.py.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from mksgn import run_files
from mksgn.atomic import atomic_open
from mksgn.errors import MksgnError
from mksgn.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from mksgn.train.distillation import (
    DistillationLoss,
    DistillationWeights,
    build_translation,
    default_teacher_layer,
    load_teacher,
)
from mksgn.train.distributed import (
    ProcessContext,
    peer_failure,
    start_processes,
    stop_processes,
    synchronise_batch_norm,
)
from mksgn.train.epoch import RunState, TrainingObjective, run_epoch
from mksgn.train.history import read_history, write_history
from mksgn.train.loading import Augmentation, check_data_fits, open_split, resolve_device
from mksgn.train.models import build_model
from mksgn.train.models.config import ModelConfig
from mksgn.train.models.cost import dense_macs_per_sample, parameter_count
from mksgn.train.settings import (
    RESUMABLE_CHANGES,
    TrainSettings,
    learning_rate_factor,
    make_optimizer,
)


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


@dataclass(frozen=True)
class RunRequest:
    """What a run trains, on which data, distilled from which teacher, and where it writes."""

    data_path: Path
    config: ModelConfig
    settings: TrainSettings
    out_dir: Path
    teacher_checkpoint: Path | None


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
            teacher = None if teacher_checkpoint is None else Path(teacher_checkpoint)
            request = RunRequest(Path(data_path), config, settings, Path(out_dir), teacher)
            metrics = run_training(request, context, device, resume, progress)
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
    request: RunRequest,
    context: ProcessContext,
    device: torch.device,
    resume: bool,
    progress: bool,
) -> dict[str, Any]:
    """The body of `train` once the process group and device are known."""
    settings, out_dir = request.settings, request.out_dir
    checkpoint_path = out_dir / run_files.CHECKPOINT
    checkpoint = prepare_out_dir(out_dir, resume)
    if settings.batch_size % context.world_size:
        raise MksgnError(
            f"batch size {settings.batch_size} does not split over {context.world_size} "
            "processes; use a multiple of the process count"
        )
    state = build_run(request, context, device)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if checkpoint is not None:
        start_epoch = restore(state, checkpoint, request.teacher_checkpoint)
        history = read_history(out_dir / run_files.METRICS, start_epoch)
        if checkpoint.metrics and (not history or history[-1].get("epoch") != start_epoch):
            history.append(checkpoint.metrics)
    if context.is_main:
        write_config_json(
            out_dir / run_files.CONFIG, state, request.data_path, request.teacher_checkpoint
        )
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


def build_run(request: RunRequest, context: ProcessContext, device: torch.device) -> RunState:
    """Data, model (+ teacher and translation), optimiser and schedule of a fresh run."""
    data_path, config, settings = request.data_path, request.config, request.settings
    teacher_checkpoint = request.teacher_checkpoint
    augmentation = Augmentation(settings.seed, settings.rotation, settings.scale)
    train_set = open_split(data_path, "train", config, augmentation, settings.benchmark)
    test_set = open_split(data_path, "test", config, benchmark=settings.benchmark)
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
        out_dir=request.out_dir,
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
