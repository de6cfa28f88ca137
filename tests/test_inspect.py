"""`mksgn data inspect` on a small hand-built dataset, in every supported format."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run

from mksgn.train.data import formats
from mksgn.train.data.formats import SkeletonArrays, write_ctrgcn_npz
from mksgn.train.data.inspect import format_inspection, inspect_dataset

FRAMES = 6


def hand_built() -> tuple[SkeletonArrays, SkeletonArrays]:
    """Train: a 4-frame single actor, a 6-frame pair (second body 2 frames), an empty sample."""
    train = np.zeros((3, 3, FRAMES, 25, 2), np.float32)
    train[0, :, :4, :, 0] = np.array([1.0, -2.0, 3.0])[:, None, None]
    train[1, :, :, :, 0] = np.array([-4.0, 0.5, 2.0])[:, None, None]
    train[1, :, 2, 3, 0] = [10.0, 0.0, 0.0]  # present though y and z are 0
    train[1, :, :2, :, 1] = np.array([0.25, 7.0, -1.0])[:, None, None]
    test = np.zeros((2, 3, FRAMES, 25, 2), np.float32)
    test[0, :, 1:3, :, 0] = 0.5  # valid frames need not start at 0: 2 valid frames
    test[1, :, :, 5, 0] = -0.5
    return (
        SkeletonArrays(train, np.array([0, 2, 2]), ("a", "b", "c")),
        SkeletonArrays(test, np.array([1, 1]), ("d", "e")),
    )


EXPECTED_TRAIN = {
    "samples": 3,
    "frames": FRAMES,
    "bodies": 2,
    "second_body_samples": 1,
    "empty_samples": 1,
    "valid_frames": {"min": 0, "mean": round(10 / 3, 3), "max": 6},
    "value_range": {"x": [-4.0, 10.0], "y": [-2.0, 7.0], "z": [-1.0, 3.0]},
    "non_finite_values": 0,
    "class_counts": [1, 0, 2],
}
EXPECTED_TEST = {
    "samples": 2,
    "frames": FRAMES,
    "bodies": 2,
    "second_body_samples": 0,
    "empty_samples": 0,
    "valid_frames": {"min": 2, "mean": 4.0, "max": 6},
    "value_range": {"x": [-0.5, 0.5], "y": [-0.5, 0.5], "z": [-0.5, 0.5]},
    "non_finite_values": 0,
    "class_counts": [0, 2, 0],
}


def write_dataset(folder: Path, fmt: str) -> Path:
    """The hand-built dataset in one format."""
    train, test = hand_built()
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "ctrgcn-npz":
        path = folder / "hand.npz"
        write_ctrgcn_npz(path, train, test, 3, class_names=("wave", "sit", "jump"))
        return path
    if fmt == "stgcn-npy":
        for prefix, part in (("train", train), ("val", test)):
            np.save(folder / f"{prefix}_data_joint.npy", part.data)
            with open(folder / f"{prefix}_label.pkl", "wb") as handle:
                pickle.dump((list(part.names), part.labels.tolist()), handle)
        return folder
    annotations = [
        dict(frame_dir=name, label=int(label), keypoint=sample.transpose(3, 1, 2, 0))
        for part in (train, test)
        for name, label, sample in zip(part.names, part.labels, part.data, strict=True)
    ]
    split = {"xsub_train": list(train.names), "xsub_val": list(test.names)}
    path = folder / "hand.pkl"
    path.write_bytes(pickle.dumps(dict(split=split, annotations=annotations)))
    return path


@pytest.mark.parametrize("fmt", ["ctrgcn-npz", "stgcn-npy", "pyskl-pkl"])
@pytest.mark.parametrize("chunk_bytes", [formats.base.CHUNK_BYTES, 1])
def test_inspect_numbers(tmp_path: Path, monkeypatch, fmt: str, chunk_bytes: int) -> None:
    monkeypatch.setattr(formats.base, "CHUNK_BYTES", chunk_bytes)  # 1: one sample per chunk
    path = write_dataset(tmp_path / "data", fmt)
    info = inspect_dataset(path)
    assert info["path"] == str(path)
    assert info["format"] == fmt
    assert info["classes"] == 3
    assert info["class_names"] == (["wave", "sit", "jump"] if fmt == "ctrgcn-npz" else None)
    assert info["splits"] == {"train": EXPECTED_TRAIN, "test": EXPECTED_TEST}
    if fmt == "pyskl-pkl":
        assert info["benchmarks"] == ["xsub"]


def test_non_finite_values_are_counted_not_ranged(tmp_path: Path) -> None:
    train, test = hand_built()
    train.data[0, 0, 0, 0, 0] = np.nan
    train.data[0, 1, 0, 1, 0] = np.inf
    write_ctrgcn_npz(tmp_path / "nan.npz", train, test, 3)
    split = inspect_dataset(tmp_path / "nan.npz")["splits"]["train"]
    assert split["non_finite_values"] == 2
    assert split["value_range"] == EXPECTED_TRAIN["value_range"]
    assert "WARNING: 2 NaN or infinite values" in format_inspection(
        inspect_dataset(tmp_path / "nan.npz")
    )


def test_cli_text_summary(tmp_path: Path, capsys) -> None:
    path = write_dataset(tmp_path, "ctrgcn-npz")
    assert run(["data", "inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: ctrgcn-npz (CTR-GCN / InfoGCN .npz" in out
    assert "class names: wave, sit, jump" in out
    assert "train: 3 samples, 6 frames, 2 bodies (second body present in 1)" in out
    assert "valid frames per sample: min 0, mean 3.3, max 6; 1 empty samples" in out
    assert "values: x -4 .. 10  y -2 .. 7  z -1 .. 3" in out
    assert "per class: 1 0 2" in out
    assert "test: 2 samples" in out


def test_cli_json_is_one_object(tmp_path: Path, capsys) -> None:
    path = write_dataset(tmp_path, "pyskl-pkl")
    assert run(["data", "inspect", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    info = json.loads(captured.out)  # the whole of stdout is exactly one JSON document
    assert info["format"] == "pyskl-pkl"
    assert info["splits"]["train"] == EXPECTED_TRAIN
    assert captured.err == ""


def test_multi_benchmark_pyskl_lists_every_split(tmp_path: Path) -> None:
    path = write_dataset(tmp_path, "pyskl-pkl")
    content = pickle.loads(path.read_bytes())
    content["split"]["xview_train"] = ["a", "d"]
    content["split"]["xview_val"] = ["b", "c", "e"]
    path.write_bytes(pickle.dumps(content))
    info = inspect_dataset(path)
    assert info["benchmarks"] == ["xsub", "xview"]
    assert list(info["splits"]) == ["xsub_train", "xsub_val", "xview_train", "xview_val"]
    assert info["splits"]["xsub_train"] == EXPECTED_TRAIN
    assert info["splits"]["xview_val"]["samples"] == 3
    assert info["splits"]["xview_val"]["class_counts"] == [0, 1, 2]
