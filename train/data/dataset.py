"""One torch Dataset over every supported skeleton format (CTR-GCN npz, ST-GCN npy, PYSKL pickle)."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from mksgn.train.data.formats import SkeletonArrays, open_dataset
from mksgn.train.data.layout import SkeletonLayout

Transform = Callable[[np.ndarray], np.ndarray]


class SkeletonDataset(Dataset):
    """Samples of one split as (float32 tensor (3, T, V, M), 0-based int label); `layout` is the
    skeleton expected (see open_dataset), `self.layout` the one the file is read with."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        split: str = "train",
        transform: Transform | None = None,
        benchmark: str | None = None,
        layout: SkeletonLayout | None = None,
        layout_source: str = "--layout",
    ) -> None:
        source = open_dataset(path, benchmark, layout, layout_source)
        self.path = source.path
        self.format = source.format
        self.layout = source.layout
        self.planar = source.planar  # x, y and a score: not to be rotated in 3-D
        self.split = split
        self.transform = transform
        self.num_classes = source.num_classes
        self.class_names = source.class_names
        self.arrays: SkeletonArrays = source.load(split)

    @property
    def names(self) -> tuple[str, ...] | None:
        """Sample names in index order, when the file stores them."""
        return self.arrays.names

    @property
    def labels(self) -> np.ndarray:
        """0-based labels (N,) int64, in index order."""
        return self.arrays.labels

    def __len__(self) -> int:
        """Number of samples in the split."""
        return len(self.arrays)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """The sample as a float32 tensor after `transform` (applied to a private numpy copy)."""
        # A copy: ST-GCN data is a read-only memory map and transforms may work in place.
        sample = np.array(self.arrays.data[index], dtype=np.float32)
        if self.transform is not None:
            sample = self.transform(sample)
        tensor = torch.from_numpy(np.ascontiguousarray(sample, dtype=np.float32))
        return tensor, int(self.arrays.labels[index])
