"""NTU RGB+D sample names, benchmark splits and the official missing-skeleton lists."""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePath
from typing import Literal

from mksgn.errors import MksgnError

BENCHMARKS = ("ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset")

NTU60_MAX_SETUP = 17
NTU60_MAX_ACTION = 60
NTU120_MAX_SETUP = 32
NTU120_MAX_ACTION = 120


def _id_set(ids: str) -> frozenset[int]:
    return frozenset(int(number) for number in ids.split())


NTU60_XSUB_TRAIN_PERFORMERS = _id_set("1 2 4 5 8 9 13 14 15 16 17 18 19 25 27 28 31 34 35 38")
NTU120_XSUB_TRAIN_PERFORMERS = NTU60_XSUB_TRAIN_PERFORMERS | _id_set(
    "45 46 47 49 50 52 53 54 55 56 57 58 59 70 74 78 80 81 82 83 84 85 86 89 91 92 93 94 95 97 "
    "98 100 103"
)
NTU60_XVIEW_TRAIN_CAMERAS = frozenset((2, 3))

MISSING_SKELETONS_RESOURCE = "ntu_missing_skeletons.txt"

_NAME_PATTERN = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})$")

Split = Literal["train", "test"]


@dataclass(frozen=True, order=True)
class SampleName:
    """The five 1-based ids packed into an NTU name such as S001C002P003R002A013."""

    setup: int
    camera: int
    performer: int
    replication: int
    action: int

    @property
    def label(self) -> int:
        """0-based class label (action id - 1)."""
        return self.action - 1

    def __str__(self) -> str:
        return (
            f"S{self.setup:03d}C{self.camera:03d}P{self.performer:03d}"
            f"R{self.replication:03d}A{self.action:03d}"
        )


def parse_sample_name(name_or_path: str | os.PathLike[str]) -> SampleName:
    """Parse `SsssCcccPpppRrrrAaaa` from a bare name, a `.skeleton` file name or a path."""
    name = PurePath(name_or_path).name
    for suffix in (".skeleton", ".npy"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    match = _NAME_PATTERN.match(name)
    if match is None:
        raise MksgnError(
            f"{name_or_path}: not an NTU RGB+D sample name; expected SsssCcccPpppRrrrAaaa "
            "with three digits each (e.g. S001C002P003R002A013.skeleton)"
        )
    ids = tuple(int(group) for group in match.groups())
    if 0 in ids:
        raise MksgnError(
            f"{name_or_path}: NTU RGB+D ids are 1-based, but this name contains a 000 field"
        )
    return SampleName(*ids)


def _check_benchmark(benchmark: str) -> None:
    if benchmark not in BENCHMARKS:
        raise MksgnError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")


def _is_ntu60(benchmark: str) -> bool:
    return benchmark.startswith("ntu60-")


def belongs_to_dataset(sample: SampleName, benchmark: str) -> bool:
    """Whether the sample is part of the dataset (NTU60 or NTU120) the benchmark is defined on."""
    _check_benchmark(benchmark)
    if _is_ntu60(benchmark):
        return sample.setup <= NTU60_MAX_SETUP and sample.action <= NTU60_MAX_ACTION
    return sample.setup <= NTU120_MAX_SETUP and sample.action <= NTU120_MAX_ACTION


def benchmark_split(sample: SampleName, benchmark: str) -> Split | None:
    """'train' or 'test' for the benchmark, or None when the sample is not in its dataset."""
    if not belongs_to_dataset(sample, benchmark):
        return None
    if benchmark == "ntu60-xsub":
        is_train = sample.performer in NTU60_XSUB_TRAIN_PERFORMERS
    elif benchmark == "ntu60-xview":
        is_train = sample.camera in NTU60_XVIEW_TRAIN_CAMERAS
    elif benchmark == "ntu120-xsub":
        is_train = sample.performer in NTU120_XSUB_TRAIN_PERFORMERS
    else:  # ntu120-xset
        is_train = sample.setup % 2 == 0
    return "train" if is_train else "test"


def num_classes(benchmark: str) -> int:
    """Number of action classes of the benchmark's dataset (60 or 120)."""
    _check_benchmark(benchmark)
    return NTU60_MAX_ACTION if _is_ntu60(benchmark) else NTU120_MAX_ACTION


@functools.lru_cache(maxsize=1)
def _all_missing_skeleton_names() -> tuple[str, ...]:
    text = (
        resources.files("mksgn.train.data")
        .joinpath(MISSING_SKELETONS_RESOURCE)
        .read_text(encoding="utf-8")
    )
    names = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            parse_sample_name(line)  # a corrupt packaged list must fail loudly, not filter wrongly
            names.append(line)
    return tuple(names)


def missing_skeleton_names(benchmark: str) -> frozenset[str]:
    """Official names of samples with missing skeletons in the benchmark's dataset (302 or 535)."""
    _check_benchmark(benchmark)
    return frozenset(
        name
        for name in _all_missing_skeleton_names()
        if belongs_to_dataset(parse_sample_name(name), benchmark)
    )
