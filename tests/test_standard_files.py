"""Standard files as users have them: the original ST-GCN names, PYSKL pickles that hold several
benchmarks (--benchmark), and short clips (the summary says they were resampled)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from cli_runner import run
from test_formats import pyskl_content, write_pickle

from mksgn.train.data.formats import detect_format, load_split


def test_original_stgcn_names_are_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 3), ("val", 2)):
        np.save(tmp_path / f"{prefix}_data.npy", rng.normal(size=(count, 3, 6, 25, 2)).astype("f4"))
        labels = ([f"{prefix}{i}" for i in range(count)], list(range(count)))
        (tmp_path / f"{prefix}_label.pkl").write_bytes(pickle.dumps(labels))
    assert detect_format(tmp_path) == "stgcn-npy"
    for given in (tmp_path, tmp_path / "train_data.npy", tmp_path / "val_label.pkl"):
        assert len(load_split(given, "train")) == 3 and len(load_split(given, "test")) == 2


def test_benchmark_option_and_the_resampling_notice(tmp_path: Path, capsys) -> None:
    content, _ = pyskl_content(np.random.default_rng(3))
    data = write_pickle(tmp_path / "two.pkl", content)
    capsys.readouterr()
    assert run(["data", "inspect", str(data), "--benchmark", "xview", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["layout"]["name"] == "ntu-25"
    assert {split: part["samples"] for split, part in info["splits"].items()} == {
        "train": 4,
        "test": 1,
    }
    out = tmp_path / "run"
    train = ["train", "--data", str(data), "--model", "gcn", "--epochs", "1", "--frames", "8"]
    assert run([*train, "--out", str(out)]) == 1
    assert "choose one (benchmark=..., --benchmark)" in capsys.readouterr().err
    assert run([*train, "--benchmark", "xsub", "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    # Its five clips have 3 to 6 frames; the model takes 8.
    assert line.endswith("; 5 clips shorter than 8 frames were resampled to 8"), line
    checkpoint = str(out / "checkpoint.pt")
    assert run(["evaluate", checkpoint, "--data", str(data), "--benchmark", "xsub", "--json"]) == 0
    evaluation = json.loads(capsys.readouterr().out)
    assert evaluation["samples"] == evaluation["resampled_clips"] == 2


def test_2d_keypoints_with_scores_are_not_rotated_in_3d(tmp_path: Path) -> None:
    from test_layouts_lava import pyskl_pickle

    from mksgn.train.data.dataset import SkeletonDataset
    from mksgn.train.loading import Augmentation, SampledSplit

    data = pyskl_pickle(tmp_path / "coco.pkl", 17, two_d=True)
    base = SkeletonDataset(data, "train")
    assert base.planar and base.layout.name == "coco-17"
    sampled = SampledSplit(base, frames=8, augmentation=Augmentation())
    assert sampled.augment.rotation == 0.0
    assert SampledSplit(SkeletonDataset(data, "train"), 8).augment is None
