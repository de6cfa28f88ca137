"""Valid seed files of every fuzzed format, written the way mksgn (or the tool it reads from)
writes them: small enough to mutate and parse in milliseconds, varied enough to get deep into
each reader."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mksgn.benchmarks.support.fuzz.encoding import bundle, npy_bytes

if TYPE_CHECKING:
    pass


# --------------------------------------------------------------------------- .skeleton


def skeleton_seeds(folder: Path) -> list[bytes]:
    """Small valid .skeleton files: 1-2 bodies, a frame without a body, a body that leaves."""
    from mksgn.train.data.skeleton_file import write_skeleton_file

    folder.mkdir(parents=True, exist_ok=True)
    seeds = []
    for index, (frames, bodies) in enumerate(((3, 1), (5, 2), (14, 2))):
        rng = np.random.default_rng(index)
        joints = rng.normal(0.0, 0.5, (frames, bodies, 25, 3)) + np.array([0.0, 0.0, 3.0])
        joints[1] = 0
        if bodies == 2:
            joints[-1, 1] = 0
        path = folder / f"seed{index}.skeleton"
        write_skeleton_file(path, joints)
        seeds.append(path.read_bytes())
    return seeds


# ------------------------------------------------------------------------------ npy / npz


def _tiny_splits(frames: int, seed: int):
    from mksgn.train.data.formats import SkeletonArrays

    rng = np.random.default_rng(seed)

    def part(n: int, prefix: str) -> SkeletonArrays:
        data = rng.normal(0, 1, (n, 3, frames, 25, 2)).astype(np.float32)
        labels = np.arange(n) % 3
        return SkeletonArrays(data, labels, tuple(f"{prefix}{i}" for i in range(n)))

    return part(3, "tr"), part(2, "te")


def npz_seeds(folder: Path) -> list[bytes]:
    """CTR-GCN npz files as mksgn writes them (compressed, plain, with class names)."""
    from mksgn.train.data.formats import write_ctrgcn_npz

    folder.mkdir(parents=True, exist_ok=True)
    seeds = []
    for index, compressed in enumerate((True, False)):
        train, test = _tiny_splits(4 + index, index)
        path = folder / f"seed{index}.npz"
        names = ("a", "b", "c") if index else None
        write_ctrgcn_npz(path, train, test, 3, class_names=names, compressed=compressed)
        seeds.append(path.read_bytes())
    return seeds


# ------------------------------------------------------------------- ST-GCN npy + label pkl


def stgcn_seeds(folder: Path) -> list[bytes]:
    """ST-GCN folders: train/val data .npy with label .pkl (protocol 2 and 4)."""
    seeds = []
    for index, protocol in enumerate((2, 4)):
        train, test = _tiny_splits(4, 10 + index)
        files = {}
        for prefix, part in (("train", train), ("val", test)):
            files[f"{prefix}_data_joint.npy"] = npy_bytes(part.data[..., : 1 + index])
            labels = [int(v) for v in part.labels]
            files[f"{prefix}_label.pkl"] = pickle.dumps((list(part.names), labels), protocol)
        seeds.append(bundle(files))
    return seeds


# ---------------------------------------------------------------------------- PYSKL pickle


def pyskl_content(seed: int) -> dict:
    """A small PYSKL annotation dict with two benchmarks."""
    rng = np.random.default_rng(seed)
    annotations = []
    for index in range(5):
        frames = int(rng.integers(3, 7))
        keypoint = rng.normal(0, 1, (1 + index % 2, frames, 25, 3)).astype(np.float16)
        annotations.append(
            dict(
                frame_dir=f"S001C001P00{index}R001A00{index % 3 + 1}",
                label=index % 3,
                keypoint=keypoint,
                total_frames=frames,
            )
        )
    names = [a["frame_dir"] for a in annotations]
    split = {"xsub_train": names[:3], "xsub_val": names[3:], "xview_train": names[1:]}
    split["xview_val"] = names[:1]
    return {"split": split, "annotations": annotations}


def pyskl_seeds(folder: Path) -> list[bytes]:
    """PYSKL pickles (protocol 4 and 5, the latter with out-of-band-capable array frames)."""
    return [pickle.dumps(pyskl_content(seed), protocol) for seed, protocol in ((0, 4), (1, 5))]


# ------------------------------------------------------------------------------ NIR graphs


def nir_graphs() -> list[object]:
    """Small graphs covering Affine, Conv1d, Conv2d, pooling, Flatten, CubaLIF and a subgraph."""
    import nir

    from mksgn.benchmarks.support.graphs import dense_lif_graph, lif

    rng = np.random.default_rng(0)
    dense = dense_lif_graph(rng.normal(0, 1, (3, 4)))
    conv1d = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([2, 6])),
            "conv": nir.Conv1d(
                input_shape=6,
                weight=rng.normal(0, 1, (2, 2, 3)),
                stride=1,
                padding=1,
                dilation=1,
                groups=1,
                bias=np.zeros(2),
            ),
            "lif": lif((2, 6)),
            "flat": nir.Flatten(input_type={"input": np.array([2, 6])}, start_dim=0),
            "fc": nir.Linear(weight=rng.normal(0, 1, (3, 12))),
            "li": nir.LI(tau=np.full(3, 2e-4), r=np.ones(3), v_leak=np.zeros(3)),
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[
            ("input", "conv"),
            ("conv", "lif"),
            ("lif", "flat"),
            ("flat", "fc"),
            ("fc", "li"),
            ("li", "output"),
        ],
        type_check=False,
    )
    conv2d = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([1, 4, 4])),
            "conv": nir.Conv2d(
                input_shape=(4, 4),
                weight=rng.normal(0, 1, (2, 1, 3, 3)),
                stride=1,
                padding=1,
                dilation=1,
                groups=1,
                bias=np.zeros(2),
            ),
            "cuba": nir.CubaLIF(
                tau_syn=np.full((2, 4, 4), 2e-4),
                tau_mem=np.full((2, 4, 4), 3e-4),
                r=np.ones((2, 4, 4)),
                v_leak=np.zeros((2, 4, 4)),
                v_threshold=np.ones((2, 4, 4)),
                v_reset=np.zeros((2, 4, 4)),
                w_in=np.ones((2, 4, 4)),
            ),
            "pool": nir.SumPool2d(
                kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])
            ),
            "lif": lif((2, 2, 2)),
            "output": nir.Output(output_type=np.array([2, 2, 2])),
        },
        edges=[
            ("input", "conv"),
            ("conv", "cuba"),
            ("cuba", "pool"),
            ("pool", "lif"),
            ("lif", "output"),
        ],
        type_check=False,
    )
    return [dense, conv1d, conv2d]


def nir_seeds(folder: Path) -> list[bytes]:
    """The NIR graphs as files written by nir.write."""
    import nir

    folder.mkdir(parents=True, exist_ok=True)
    seeds = []
    for index, graph in enumerate(nir_graphs()):
        path = folder / f"seed{index}.nir"
        nir.write(path, graph)
        seeds.append(path.read_bytes())
    return seeds


# ------------------------------------------------------------------------------ checkpoints


def checkpoint_seeds(folder: Path) -> list[bytes]:
    """Checkpoints as `mksgn train` writes them: a few-channel MK-SGN with AdamW state, a GCN."""
    import dataclasses

    import torch

    from mksgn.train.checkpoint import save_checkpoint
    from mksgn.train.models import build_model, preset_config
    from mksgn.train.models.config import LayerSpec

    seeds = []
    for name in ("mk-sgn", "gcn"):
        torch.manual_seed(0)
        config = preset_config(name, "tiny", num_classes=3, time_steps=2, frames=8)
        if name == "mk-sgn":
            config = dataclasses.replace(
                config, layers=(LayerSpec("sgc", 4), LayerSpec("stc", 4)), temporal_kernel=3
            )
        model = build_model(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        model(torch.randn(2, 3, 8, 25, 2)).logits.sum().backward()
        optimizer.step()
        path = folder / f"{name}.pt"
        save_checkpoint(
            path,
            config=config,
            model_state=model.state_dict(),
            optimizer_state=optimizer.state_dict(),
            scheduler_state={"last_epoch": 1},
            epoch=1,
            metrics={"test_acc": 0.5},
            rng_state={"torch": torch.get_rng_state()},
        )
        seeds.append(path.read_bytes())
    return seeds


# ------------------------------------------------------------------------- --input arrays


INPUT_GRAPH_INDEX = 1  # the Conv1d graph: input (2, 6)


def input_seeds(folder: Path) -> list[bytes]:
    """Arrays shaped (T, 2, 6) and (samples, T, 2, 6), float32 and int."""
    rng = np.random.default_rng(0)
    return [
        npy_bytes(rng.normal(0, 1, (3, 2, 6)).astype(np.float32)),
        npy_bytes(rng.normal(0, 1, (2, 3, 2, 6))),
        npy_bytes(rng.integers(0, 2, (2, 3, 2, 6)).astype(np.int8)),
    ]
