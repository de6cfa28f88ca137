"""Batches for training and evaluation: dataset splits with CTR-GCN sampling whose randomness
depends only on (seed, epoch, sample index), the device, and checks that data fit a model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mksgn.errors import MksgnError
from mksgn.train.data.dataset import SkeletonDataset
from mksgn.train.data.formats import open_dataset
from mksgn.train.data.transforms import TestTransform, TrainTransform, valid_lengths
from mksgn.train.models.config import ModelConfig


@dataclass(frozen=True)
class Augmentation:
    """Training draws: rotation up to `rotation` radians about each axis, scaling by a factor in
    [1 - scale, 1 + scale], from a generator seeded by (seed, epoch, sample index)."""

    seed: int = 0
    rotation: float = 0.3
    scale: float = 0.0


class SampledSplit(Dataset):
    """One split of a skeleton dataset with training or test sampling applied per item.

    Training augmentation draws from a generator seeded by (seed, epoch, index), so the result
    does not depend on the loader's worker count, on the sample order or on the process that
    loads the item: the same seed gives the same batches in one process or several.
    """

    def __init__(
        self, base: SkeletonDataset, frames: int, augmentation: Augmentation | None = None
    ) -> None:
        """Sample `base` to `frames` frames: augmented when `augmentation` is given (training),
        else the test sampling."""
        self.base = base
        self.seed = augmentation.seed if augmentation else 0
        self.epoch = 0
        self.augment = None
        if augmentation is not None:
            # A 3-D rotation would mix the score of 2-D keypoints into their coordinates.
            rotation = 0.0 if base.planar else augmentation.rotation
            self.augment = TrainTransform(frames, rotation=rotation, scale=augmentation.scale)
        self.test_sampling = TestTransform(frames)

    @property
    def num_classes(self) -> int:
        """Classes of the underlying dataset."""
        return self.base.num_classes

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of this epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        joints, label = self.base[index]
        joints = np.asarray(joints, dtype=np.float32)
        if self.augment is not None:
            # TrainTransform draws from its `rng`; a per-item generator makes the draw reproducible.
            self.augment.rng = np.random.default_rng((self.seed, self.epoch, index))
            sampled = self.augment(joints)
        else:
            sampled = self.test_sampling(joints)
        return torch.from_numpy(np.ascontiguousarray(sampled)), int(label)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """torch.device for "cpu" or "cuda" (this process's GPU under torchrun); no GPU -> error."""
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise MksgnError(
                "--device cuda was requested but PyTorch sees no CUDA GPU "
                "(torch.cuda.is_available() is False); use --device cpu"
            )
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    raise MksgnError(f"unknown device {name!r}; choose cpu or cuda")


def open_split(
    data_path: str | Path,
    split: str,
    config: ModelConfig,
    augmentation: Augmentation | None = None,
    benchmark: str | None = None,
    model_source: str = "the model",
) -> SampledSplit:
    """A split of the dataset at `data_path` (read with the model's skeleton layout), sampled to
    the model's frame count, with `augmentation`'s draws where given (training)."""
    base = SkeletonDataset(
        data_path,
        split=split,
        transform=None,
        benchmark=benchmark,
        layout=config.skeleton_layout,
        layout_source=model_source,
    )
    return SampledSplit(base, config.frames, augmentation)


def count_short_clips(
    data_path: str | Path, config: ModelConfig, benchmark: str | None = None
) -> int:
    """Clips of both splits with fewer valid frames than the model's: sampling stretches them."""
    source = open_dataset(data_path, benchmark, config.skeleton_layout)
    return sum(
        short_clip_count(chunk.data, config.frames)
        for split in source.splits
        for chunk in source.iter_chunks(split)
    )


def short_clip_count(data: np.ndarray, frames: int, chunk: int = 1024) -> int:
    """Samples of (N, C, T, V, M) with 1 to frames - 1 valid frames, read `chunk` at a time (the
    array may be a memory map)."""
    short = 0
    for start in range(0, len(data), chunk):
        lengths = valid_lengths(np.asarray(data[start : start + chunk]))
        short += int(np.count_nonzero((lengths > 0) & (lengths < frames)))
    return short


def sample_shape(dataset: SampledSplit) -> tuple[int, ...]:
    """(channels, frames, joints, bodies) of one raw sample (before sampling)."""
    return tuple(dataset.base.arrays.data.shape[1:])


def check_data_fits(
    dataset: SampledSplit,
    data_path: str | Path,
    config: ModelConfig,
    checkpoint_path: str | Path | None = None,
) -> None:
    """Refuse data whose classes, joints or bodies differ from what the model expects."""
    model_source = f"the model in {checkpoint_path}" if checkpoint_path else "the model"
    if dataset.num_classes != config.num_classes:
        raise MksgnError(
            f"{data_path} has {dataset.num_classes} classes but {model_source} predicts "
            f"{config.num_classes}: use data of the dataset the model was trained on"
        )
    if len(dataset) == 0:
        return
    shape = sample_shape(dataset)
    expected = (3, config.joints, config.bodies)
    if len(shape) != 4 or (shape[0], shape[2], shape[3]) != expected:
        raise MksgnError(
            f"{data_path}: samples are shaped {shape} but {model_source} expects "
            f"(3, frames, {config.joints}, {config.bodies}) = (xyz, frames, joints, bodies)"
        )


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    seed: int,
    workers: int,
    sampler: Sampler | None = None,
) -> DataLoader:
    """A DataLoader whose shuffling and worker seeds follow `seed`."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        generator=torch.Generator().manual_seed(seed),
        drop_last=False,
    )
