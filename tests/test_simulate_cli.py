"""`mksgn export` then `mksgn simulate --backend snntorch`: --input and --data, --json, --out,
and the errors of a wrong input."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import run
from model_fixtures import save_model

from mksgn.train.data import synthetic
from mksgn.train.data.dataset import SkeletonDataset
from mksgn.train.data.transforms import TestTransform
from mksgn.train.models import build_model, preset_config
from mksgn.train.models.config import LayerSpec

FRAMES, CLASSES, STEPS, NODES = 8, 3, 2, 50


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module, Path]:
    """An MK-SGN checkpoint exported with 'mksgn export', its model, and a synthetic dataset."""
    folder = tmp_path_factory.mktemp("simulate")
    config = preset_config("mk-sgn", "tiny", CLASSES, time_steps=STEPS, frames=FRAMES)
    config = dataclasses.replace(
        config,
        layers=(LayerSpec("sgc", 4), LayerSpec("stc", 4), LayerSpec("sgc", 6)),
        temporal_kernel=3,
        threshold=0.2,
    )
    torch.manual_seed(0)
    model = build_model(config).eval()
    save_model(model, folder / "mk.pt")
    assert run(["export", str(folder / "mk.pt"), "--nir", str(folder / "mk.nir")]) == 0
    data = folder / "synthetic.npz"
    synthetic.write_npz(synthetic.generate(classes=CLASSES, samples_per_class=4, frames=12), data)
    return folder / "mk.nir", model, data


def test_simulate_input_array_json_and_out(exported, tmp_path: Path, capsys) -> None:
    graph_file, _, _ = exported
    x = np.random.default_rng(0).normal(size=(3, 4, NODES * 12, FRAMES)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "run.npz"
    capsys.readouterr()
    code = run(
        [
            "simulate",
            str(graph_file),
            "--input",
            str(tmp_path / "x.npy"),
            "--backend",
            "snntorch",
            "--record",
            "layer2.lif",
            "--record",
            "layer1.bone.lif",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert {"predictions", "spike_counts", "steps_per_sample", "wall_s_per_sample"} <= set(summary)
    assert "accuracy" not in summary
    assert summary["steps_per_sample"] == 4 and len(summary["predictions"]) == 3
    with np.load(out) as saved:
        assert saved["output"].shape == (3, 4, CLASSES)
        assert saved["layer2.lif"].shape == (3, 4, NODES * 4, FRAMES)
        assert saved["layer1.bone.lif"].shape == (3, 4, NODES * 4, FRAMES)
        assert summary["spike_counts"] == {
            "layer2.lif": int(saved["layer2.lif"].sum()),
            "layer1.bone.lif": int(saved["layer1.bone.lif"].sum()),
        }
        predictions = saved["output"].mean(axis=1).argmax(axis=1)
        assert summary["predictions"] == predictions.tolist()
    # One unbatched sequence (T, *shape) is one sample.
    np.save(tmp_path / "one.npy", x[1])
    assert (
        run(
            [
                "simulate",
                str(graph_file),
                "--input",
                str(tmp_path / "one.npy"),
                "--backend",
                "snntorch",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["predictions"] == [summary["predictions"][1]]


def test_simulate_data_matches_the_torch_model(exported, tmp_path: Path, capsys) -> None:
    graph_file, model, data = exported
    out = tmp_path / "data.npz"
    capsys.readouterr()
    code = run(
        [
            "simulate",
            str(graph_file),
            "--data",
            str(data),
            "--backend",
            "snntorch",
            "--samples",
            "5",
            "--record",
            "layer3.lif",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    dataset = SkeletonDataset(data, split="test", transform=TestTransform(FRAMES))
    joints = torch.stack([dataset[i][0] for i in range(5)])
    with torch.no_grad():
        reference = model(joints)
    expected = reference.logits.argmax(dim=1).numpy()
    assert summary["predictions"] == expected.tolist()
    labels = dataset.labels[:5]
    assert summary["accuracy"] == pytest.approx(float(np.mean(expected == labels)))
    with np.load(out) as saved:
        np.testing.assert_array_equal(saved["labels"], labels)
        assert saved["layer3.lif"].shape == (5, STEPS, NODES * 6, FRAMES)
        spikes = reference.spikes["layer3"].permute(1, 0, 4, 2, 3).reshape(5, STEPS, -1, FRAMES)
        assert np.array_equal(saved["layer3.lif"], spikes.numpy())
        np.testing.assert_allclose(
            saved["output"].mean(axis=1), reference.logits.numpy(), rtol=0, atol=1e-5
        )


def test_wrong_input_shape_is_an_error(exported, tmp_path: Path, capsys) -> None:
    graph_file, _, _ = exported
    np.save(tmp_path / "bad.npy", np.zeros((2, 4, NODES * 3, FRAMES), dtype=np.float32))
    capsys.readouterr()
    code = run(
        [
            "simulate",
            str(graph_file),
            "--input",
            str(tmp_path / "bad.npy"),
            "--backend",
            "snntorch",
            "--out",
            str(tmp_path / "never.npz"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("Error: ") and "bad.npy" in err
    assert "(2, 4, 150, 8)" in err and f"{NODES * 12}, {FRAMES}" in err
    assert not (tmp_path / "never.npz").exists()
    assert run(["simulate", str(graph_file), "--backend", "snntorch"]) == 2
    capsys.readouterr()
    np.save(tmp_path / "good.npy", np.zeros((STEPS, NODES * 12, FRAMES), dtype=np.float32))
    code = run(
        [
            "simulate",
            str(graph_file),
            "--input",
            str(tmp_path / "good.npy"),
            "--backend",
            "snntorch",
            "--record",
            "layer9.lif",
        ]
    )
    assert code == 1 and "layer9.lif" in capsys.readouterr().err
    # Without --json or --out, the text summary still says what came out.
    args = ["simulate", str(graph_file), "--input", str(tmp_path / "good.npy")]
    assert run([*args, "--backend", "snntorch"]) == 0
    out = capsys.readouterr().out
    assert "predicted class per sample ('output' summed over steps): [" in out


def test_simulate_accepts_an_artifact_folder(exported, tmp_path: Path, capsys) -> None:
    graph_file, _, _ = exported
    folder = tmp_path / "artifact"
    folder.mkdir()
    shutil.copy(graph_file, folder / "model.nir")
    x = np.zeros((STEPS, NODES * 12, FRAMES), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    capsys.readouterr()
    assert (
        run(
            [
                "simulate",
                str(folder),
                "--input",
                str(tmp_path / "x.npy"),
                "--backend",
                "snntorch",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["model"] == str(folder / "model.nir")


def test_an_unwritable_out_is_refused_before_the_run(tmp_path: Path, capsys) -> None:
    """--out where no file can be created (under a file, here; a read-only folder likewise for
    a non-root user) fails at once, before Lava starts, and does not say to free space."""
    import nir

    graph = tmp_path / "g.nir"
    nodes = {"input": nir.Input(input_type=np.array([2])), "output": nir.Output(np.array([2]))}
    nir.write(graph, nir.NIRGraph(nodes=nodes, edges=[("input", "output")]))
    np.save(tmp_path / "x.npy", np.zeros((2, 2)))
    out = tmp_path / "x.npy" / "out.npz"
    args = ["simulate", str(graph), "--input", str(tmp_path / "x.npy"), "--backend", "lava-float"]
    assert run([*args, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Error: {out}: cannot write there") and err.count("\n") == 1
    assert "free some space" not in err.lower() and "nothing was run" in err
