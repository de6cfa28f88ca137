"""Every layout end to end: generated data of ntu-25 (one-body CTR-GCN npz), kinect-v1-20 (NW-UCLA
clips through `data prepare`), coco-17 (PYSKL 2-D + score) and a custom JSON layout (PYSKL 3-D)
trains a small MK-SGN for one epoch, exports to NIR, converts, and runs on Lava float spike for
spike as on the snnTorch reference; mismatched layouts are one Error line."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run
from test_nw_ucla import prepare, write_clip

from mksgn.convert.nir_io import read_nir
from mksgn.train.data.formats import SkeletonArrays, load_split, write_ctrgcn_npz
from mksgn.train.data.layout import NTU_25, SkeletonLayout, load_layout
from mksgn.train.models.config import LayerSpec
from mksgn.train.settings import TrainSettings, config_for_data
from mksgn.train.training import train

FRAMES, STEPS = 8, 2
# Six joints with a cycle (1-2-3-5-4-1): joints 3 and 5 are equally far from the centre.
CUSTOM = {
    "name": "hexapod",
    "joints": ["tail", "body", "left", "left_tip", "right", "right_tip"],
    "edges": [[0, 1], [1, 2], [2, 3], [1, 4], [4, 5], [3, 5]],
    "center": 1,
    "channels": 3,
}


def walk(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Smooth random motion along axis 1 (frames)."""
    return rng.normal(scale=0.1, size=shape).cumsum(axis=1).astype(np.float32)


def ntu_npz(folder: Path) -> tuple[Path, list[str]]:
    """A one-body CTR-GCN npz (N, T, 75) of 25-joint skeletons, recording ntu-25."""
    rng = np.random.default_rng(1)
    parts = [
        SkeletonArrays(walk(rng, n, 10, 3, 25, 1).transpose(0, 2, 1, 3, 4).copy(), np.arange(n) % 2)
        for n in (4, 2)
    ]
    path = folder / "ntu.npz"
    write_ctrgcn_npz(path, *parts, num_classes=2, layout=NTU_25, bodies=1)
    return path, []


def ucla_npz(folder: Path) -> tuple[Path, list[str]]:
    """NW-UCLA clips of two actions in views 1-3, prepared by the CLI."""
    raw = folder / "all_sqe"
    raw.mkdir()
    for seed, (action, view) in enumerate((a, v) for a in (1, 12) for v in (1, 2, 3)):
        write_clip(raw, action, 1, view, frames=6 + seed, seed=seed)
    out = folder / "ucla.npz"
    code = prepare(raw, out)
    assert code == 0
    return out, []


def pyskl_pickle(path: Path, joints: int, two_d: bool) -> Path:
    """A PYSKL pickle with one benchmark (xsub) of 6 samples, 2-D + score or 3-D."""
    rng = np.random.default_rng(joints)
    annotations = []
    for index in range(6):
        coords = walk(rng, 1, 7 + index, joints, 2 if two_d else 3)
        annotation = {
            "frame_dir": f"clip{index}",
            "label": index % 2,
            "keypoint": coords,
            "total_frames": coords.shape[1],
        }
        if two_d:
            annotation["keypoint_score"] = rng.uniform(size=coords.shape[:3]).astype(np.float32)
        annotations.append(annotation)
    names = [a["frame_dir"] for a in annotations]
    content = {
        "split": {"xsub_train": names[:4], "xsub_val": names[4:]},
        "annotations": annotations,
    }
    path.write_bytes(pickle.dumps(content, protocol=4))
    return path


def coco_pickle(folder: Path) -> tuple[Path, list[str]]:
    """2-D COCO keypoints with scores: read as coco-17 without --layout."""
    return pyskl_pickle(folder / "coco.pkl", 17, two_d=True), []


def custom_pickle(folder: Path) -> tuple[Path, list[str]]:
    """3-D keypoints of the custom six-joint layout, read with --layout FILE.json."""
    layout_file = folder / "hexapod.json"
    layout_file.write_text(json.dumps(CUSTOM))
    return pyskl_pickle(folder / "hexapod.pkl", 6, two_d=False), ["--layout", str(layout_file)]


DATASETS = {
    "ntu-25": ntu_npz,
    "kinect-v1-20": ucla_npz,
    "coco-17": coco_pickle,
    "hexapod": custom_pickle,
}


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """Per layout: dataset, checkpoint, NIR graph and converted folder of a 1-epoch MK-SGN."""
    made: dict[str, dict[str, Path]] = {}
    for name, make in DATASETS.items():
        folder = tmp_path_factory.mktemp(name)
        data, options = make(folder)
        layout = load_layout(options[1]) if options else None
        config = config_for_data(data, "mk-sgn", "tiny", STEPS, FRAMES, layout)
        assert config.skeleton_layout.name == name
        config = dataclasses.replace(
            config,
            layers=(LayerSpec("sgc", 4), LayerSpec("stc", 4), LayerSpec("sgc", 6)),
            temporal_kernel=3,
            threshold=0.2,
        )
        settings = TrainSettings(epochs=1, batch_size=4, warmup_epochs=0)
        train(data, config, settings, folder / "run", progress=False)
        checkpoint, graph = folder / "run" / "checkpoint.pt", folder / "mk.nir"
        assert run(["export", str(checkpoint), "--nir", str(graph)]) == 0
        assert run(["convert", str(graph), "--out", str(folder / "lava")]) == 0
        made[name] = {
            "data": data,
            "checkpoint": checkpoint,
            "graph": graph,
            "lava": folder / "lava",
            "folder": folder,
        }
    return made


def spikes_of(target: Path, data: Path, backend: str, records: list[str], out: Path) -> dict:
    """Every recorded node of one test sample on a backend."""
    options = [f"--record={name}" for name in records]
    code = run(
        [
            "simulate",
            str(target),
            "--data",
            str(data),
            "--backend",
            backend,
            "--samples",
            "1",
            "--out",
            str(out),
            "--json",
            *options,
        ]
    )
    assert code == 0
    with np.load(out) as saved:
        return {name: saved[name] for name in records}


@pytest.mark.parametrize("name", list(DATASETS))
def test_lava_float_matches_snntorch_spike_for_spike(pipelines, name: str, capsys) -> None:
    made = pipelines[name]
    graph = read_nir(made["graph"])
    layout = SkeletonLayout.from_json(graph.metadata["layout"])
    assert layout.name == name
    records = sorted(node for node in graph.nodes if node.endswith(".lif"))
    assert len(records) >= 6  # four coding branches, then the hidden layers
    folder = made["folder"]
    reference = spikes_of(made["graph"], made["data"], "snntorch", records, folder / "ref.npz")
    lava = spikes_of(made["lava"], made["data"], "lava-float", records, folder / "lava.npz")
    capsys.readouterr()
    assert sum(int(s.sum()) for s in reference.values()) > 0, "nothing spiked: a vacuous check"
    for node in records:
        assert np.array_equal(lava[node], reference[node]), f"{name}: {node} differs"


def error_line(capsys) -> str:
    """The single stderr line of a failed command."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), lines
    return lines[0]


def test_a_model_and_data_of_different_layouts_is_one_error(
    pipelines, tmp_path: Path, capsys
) -> None:
    ucla, ntu = pipelines["kinect-v1-20"], pipelines["ntu-25"]
    capsys.readouterr()
    assert run(["evaluate", str(ucla["checkpoint"]), "--data", str(ntu["data"])]) == 1
    line = error_line(capsys)
    assert "'ntu-25'" in line and "'kinect-v1-20'" in line and "the model in" in line
    code = run(
        ["simulate", str(ucla["graph"]), "--data", str(ntu["data"]), "--backend", "snntorch"]
    )
    assert code == 1
    line = error_line(capsys)
    assert "'ntu-25'" in line and "'kinect-v1-20'" in line and "the graph in" in line
    code = run(["energy", str(ucla["graph"]), "--data", str(ntu["data"])])
    assert code == 1 and "'kinect-v1-20'" in error_line(capsys)
    # A CTR-GCN npz of others records no layout: its width does not fit the model's skeleton.
    unrecorded = ucla["folder"] / "others.npz"
    write_ctrgcn_npz(unrecorded, *(load_split(ntu["data"], s) for s in ("train", "test")), 2)
    assert run(["evaluate", str(ucla["checkpoint"]), "--data", str(unrecorded)]) == 1
    line = error_line(capsys)
    assert "(N, T, 120) = 2 bodies x 20 joints" in line and "uses layout 'kinect-v1-20'" in line
    # A teacher of another skeleton is refused before any training.
    teacher = ntu["folder"] / "gcn"
    config = dataclasses.replace(
        config_for_data(ntu["data"], "gcn", "tiny", STEPS, FRAMES),
        layers=(LayerSpec("gcn-block", 4),),
        temporal_kernel=3,
    )
    train(ntu["data"], config, TrainSettings(epochs=1, batch_size=4), teacher, progress=False)
    coco = pipelines["coco-17"]
    student = ["train", "--data", str(coco["data"]), "--model", "mk-sgn"]
    code = run([*student, "--teacher", str(teacher / "checkpoint.pt"), "--out", str(tmp_path)])
    assert code == 1
    line = error_line(capsys)
    assert "trained on skeleton layout 'ntu-25'" in line and "'coco-17'" in line
    # The custom model reads its own pickle without --layout: the layout comes from the model.
    custom = pipelines["hexapod"]
    code = run(["evaluate", str(custom["checkpoint"]), "--data", str(custom["data"]), "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 2


def test_data_without_a_known_layout_and_bad_layouts_are_one_error(
    pipelines, tmp_path: Path, capsys
) -> None:
    custom, ntu = pipelines["hexapod"], pipelines["ntu-25"]
    capsys.readouterr()
    code = run(
        ["train", "--data", str(custom["data"]), "--model", "gcn", "--out", str(tmp_path / "never")]
    )
    assert code == 1
    assert "6 joints and it records no layout; pass --layout" in error_line(capsys)
    assert not (tmp_path / "never").exists()
    code = run(["data", "inspect", str(ntu["data"]), "--layout", "coco-17"])
    assert code == 1
    line = error_line(capsys)
    assert "'ntu-25'" in line and "'coco-17'" in line
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**CUSTOM, "edges": [[0, 1], [1, 1]]}))
    assert run(["data", "inspect", str(custom["data"]), "--layout", str(bad)]) == 1
    assert "edge 1 [1, 1] joins a joint to itself" in error_line(capsys)
    assert run(["data", "inspect", str(custom["data"]), "--layout", "kinect-v2"]) == 1
    assert "neither a built-in layout" in error_line(capsys)
    layout_file = custom["folder"] / "hexapod.json"
    assert run(["data", "inspect", str(custom["data"]), "--layout", str(layout_file)]) == 0
    assert "layout: 'hexapod' (6 joints, 6 edges, centre body)" in capsys.readouterr().out
