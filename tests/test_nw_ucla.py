"""`mksgn data prepare --benchmark nw-ucla-xview` on generated clips in NW-UCLA's all_sqe format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run

from mksgn.train.data.formats import open_dataset
from mksgn.train.data.layout import KINECT_V1_20
from mksgn.train.data.nw_ucla import ACTION_LABELS

ACTIONS = sorted(ACTION_LABELS)


def write_clip(folder: Path, action: int, subject: int, view: int, frames: int, seed: int) -> str:
    """One clip file aXX_sYY_e00_vWW.json with a random walk of 20 joints; returns its name."""
    name = f"a{action:02d}_s{subject:02d}_e00_v{view:02d}"
    walk = np.random.default_rng(seed).normal(scale=0.05, size=(frames, 20, 3)).cumsum(axis=0)
    skeletons = (walk + np.array([0.1, 0.2, 2.5])).round(6).tolist()
    content = {"file_name": name, "skeletons": skeletons, "label": ACTION_LABELS[action]}
    (folder / f"{name}.json").write_text(json.dumps(content))
    return name


def prepare(raw: Path, out: Path, *options: str) -> int:
    """The exit code of `mksgn data prepare --benchmark nw-ucla-xview --json` on `raw`."""
    command = ["data", "prepare", "--raw", str(raw), "--benchmark", "nw-ucla-xview"]
    return run([*command, "--out", str(out), "--json", *options])


@pytest.fixture
def all_sqe(tmp_path: Path) -> Path:
    """Every action in views 1-3 (subjects 1 and 2), plus five bad files."""
    folder = tmp_path / "all_sqe"
    folder.mkdir()
    seed = 0
    for action in ACTIONS:
        for view in (1, 2, 3):
            for subject in (1, 2):
                seed += 1
                write_clip(folder, action, subject, view, frames=3 + seed % 7, seed=seed)
    good = (folder / "a01_s01_e00_v01.json").read_text()
    (folder / "a02_s09_e00_v01.json").write_text(good[: len(good) // 2])  # truncated
    (folder / "a03_s09_e00_v03.json").write_text('{"file_name": "x", "skeletons": [], "label": 3}')
    (folder / "a04_s09_e00_v02.json").write_text(
        json.dumps({"skeletons": [[[0.0, 0.0, 0.0]] * 19], "label": 4})
    )
    (folder / "a05_s09_e00_v01.json").write_text(good.replace('"label": 1', '"label": 7'))
    (folder / "notes.json").write_text("{}")
    return folder


def test_prepare_splits_cross_view_with_ctrgcn_labels(all_sqe: Path, tmp_path: Path) -> None:
    out = tmp_path / "ucla.npz"
    assert prepare(all_sqe, out) == 0
    source = open_dataset(out)
    assert source.layout == KINECT_V1_20 and source.num_classes == 10
    train, test = source.load("train"), source.load("test")
    assert len(train) == 10 * 2 * 2 and len(test) == 10 * 2
    assert train.data.shape[1:] == (3, 9, 20, 1)  # padded to the longest clip, one body
    for part, views in ((train, ("v01", "v02")), (test, ("v03",))):
        assert all(name[-3:] in views for name in part.names)
        for name, label in zip(part.names, part.labels, strict=True):
            # a01..a06 -> 0..5, a08 -> 6, a09 -> 7, a11 -> 8, a12 -> 9
            assert label == ACTION_LABELS[int(name[1:3])] - 1
    assert sorted(set(train.labels)) == list(range(10))
    # Centred on joint 2 (spine) of the first frame, as CTR-GCN's feeder does.
    index = train.names.index("a01_s01_e00_v01")
    raw = np.array(json.loads((all_sqe / "a01_s01_e00_v01.json").read_text())["skeletons"])
    expected = (raw - raw[0, 1]).transpose(2, 0, 1)
    np.testing.assert_allclose(train.data[index, :, : len(raw), :, 0], expected, atol=1e-6)
    assert not train.data[index, :, len(raw) :].any()


def test_bad_files_are_skipped_and_listed_or_stop_with_strict(
    all_sqe: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "ucla.npz"
    capsys.readouterr()
    assert prepare(all_sqe, out) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["layout"] == "kinect-v1-20" and summary["kept"] == {"train": 40, "test": 20}
    reasons = {entry["file"]: entry["reason"] for entry in summary["skipped"]}
    assert reasons == {
        "a02_s09_e00_v01.json": "malformed",
        "a03_s09_e00_v03.json": "empty",
        "a04_s09_e00_v02.json": "malformed",
        "a05_s09_e00_v01.json": "malformed",
        "notes.json": "not an NW-UCLA clip name",
    }
    assert "aXX_sYY_eZZ_vWW" in next(
        s["detail"] for s in summary["skipped"] if s["file"] == "notes.json"
    )
    code = prepare(all_sqe, tmp_path / "strict.npz", "--strict")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("Error: ")
    assert "--strict stops at the first bad file" in err[0]
    assert not (tmp_path / "strict.npz").exists()


def test_benchmark_script_runs_end_to_end_on_a_small_subset(tmp_path: Path, capsys) -> None:
    from mksgn.benchmarks.nw_ucla import main

    raw = tmp_path / "all_sqe"
    raw.mkdir()
    for seed, action in enumerate(ACTIONS):
        for view in (1, 2, 3):
            write_clip(raw, action, 1, view, frames=5 + seed % 4, seed=10 * seed + view)
    out = tmp_path / "bench"
    main(
        [
            "--raw",
            str(raw),
            "--out",
            str(out),
            "--seeds",
            "0",
            "--epochs",
            "1",
            "--teacher-epochs",
            "1",
            "--frames",
            "8",
            "--subset",
            "10",
            "--parity-samples",
            "1",
        ]
    )
    summary = json.loads((out / "nw_ucla.json").read_text())
    assert summary["layout"] == "kinect-v1-20" and summary["test_samples"] == 10
    assert set(summary["seeds"]["0"]) == {"gcn", "base-sgn", "mk-sgn"}
    assert summary["energy"]["samples"] == 10 and summary["energy"]["backend"] == "loihi-emu-float"
    assert summary["parity"]["identical"]
    assert "| MK-SGN (distilled) |" in (out / "nw_ucla.md").read_text()
    assert "published, not measured here" in capsys.readouterr().out
