"""NTU RGB+D names, benchmark splits and the missing-skeleton lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from mksgn.errors import MksgnError
from mksgn.train.data.ntu import (
    BENCHMARKS,
    SampleName,
    benchmark_split,
    missing_skeleton_names,
    num_classes,
    parse_sample_name,
)

NTU60_XSUB_TRAIN = {1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38}
NTU120_XSUB_EXTRA_TRAIN = {45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80}
NTU120_XSUB_EXTRA_TRAIN |= {81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103}


def sample(setup: int = 1, camera: int = 1, performer: int = 1, action: int = 1) -> SampleName:
    return SampleName(setup, camera, performer, 1, action)


def test_parse_name_path_and_label() -> None:
    parsed = parse_sample_name(Path("/data/nturgb+d_skeletons/S017C003P020R002A060.skeleton"))
    assert parsed == SampleName(17, 3, 20, 2, 60)
    assert parsed.label == 59
    assert str(parsed) == "S017C003P020R002A060"
    assert parse_sample_name("S001C002P003R002A013") == SampleName(1, 2, 3, 2, 13)
    assert parse_sample_name(str(parsed)) == parsed


@pytest.mark.parametrize(
    "bad",
    [
        "S01C002P003R002A013",
        "S001C002P003R002A013X",
        "s001c002p003r002a013",
        "S001C002P003R002",
        "S001C002P003R002A000.skeleton",
        "S001C002P003R002A013.txt",
        "",
    ],
)
def test_bad_names_raise(bad: str) -> None:
    with pytest.raises(MksgnError, match=r"SsssCcccPpppRrrrAaaa|1-based"):
        parse_sample_name(bad)


def test_sample_name_is_frozen() -> None:
    with pytest.raises(AttributeError):
        sample().action = 3  # type: ignore[misc]


@pytest.mark.parametrize("performer", range(1, 107))
def test_cross_subject_follows_the_performer_lists(performer: int) -> None:
    ntu60 = benchmark_split(sample(performer=performer), "ntu60-xsub")
    assert ntu60 == ("train" if performer in NTU60_XSUB_TRAIN else "test")
    in_120_train = performer in NTU60_XSUB_TRAIN | NTU120_XSUB_EXTRA_TRAIN
    ntu120 = benchmark_split(sample(setup=20, performer=performer, action=100), "ntu120-xsub")
    assert ntu120 == ("train" if in_120_train else "test")


def test_performer_list_sizes() -> None:
    train = [
        p for p in range(1, 107) if benchmark_split(sample(performer=p), "ntu120-xsub") == "train"
    ]
    assert len(train) == 53
    train60 = [
        p for p in range(1, 41) if benchmark_split(sample(performer=p), "ntu60-xsub") == "train"
    ]
    assert len(train60) == 20


@pytest.mark.parametrize(("camera", "split"), [(1, "test"), (2, "train"), (3, "train")])
def test_cross_view_uses_cameras(camera: int, split: str) -> None:
    assert benchmark_split(sample(camera=camera, performer=1), "ntu60-xview") == split
    assert benchmark_split(sample(camera=camera, performer=3), "ntu60-xview") == split


def test_cross_setup_even_train_odd_test() -> None:
    for setup in range(1, 33):
        expected = "train" if setup % 2 == 0 else "test"
        assert (
            benchmark_split(sample(setup=setup, camera=1, performer=3), "ntu120-xset") == expected
        )


def test_ntu60_keeps_only_its_setups_and_actions() -> None:
    for benchmark in ("ntu60-xsub", "ntu60-xview"):
        assert benchmark_split(sample(setup=17, action=60), benchmark) is not None
        assert benchmark_split(sample(setup=18, action=1), benchmark) is None
        assert benchmark_split(sample(setup=1, action=61), benchmark) is None
    for benchmark in ("ntu120-xsub", "ntu120-xset"):
        assert benchmark_split(sample(setup=32, action=120), benchmark) is not None
        assert benchmark_split(sample(setup=33, action=1), benchmark) is None
        assert benchmark_split(sample(setup=1, action=121), benchmark) is None


def test_num_classes_and_unknown_benchmark() -> None:
    assert [num_classes(b) for b in BENCHMARKS] == [60, 60, 120, 120]
    with pytest.raises(MksgnError, match="ntu60-xsub"):
        num_classes("ntu61")
    with pytest.raises(MksgnError, match="unknown benchmark"):
        benchmark_split(sample(), "kinetics")


def test_missing_skeleton_lists() -> None:
    ntu60 = missing_skeleton_names("ntu60-xsub")
    ntu120 = missing_skeleton_names("ntu120-xset")
    assert len(ntu60) == 302
    assert missing_skeleton_names("ntu60-xview") == ntu60
    assert len(ntu120) == 535
    assert missing_skeleton_names("ntu120-xsub") == ntu120
    assert ntu60 < ntu120
    assert all(parse_sample_name(name).setup <= 17 for name in ntu60)
    assert "S001C002P005R002A008" in ntu60  # first name of the official list
