"""The built-in synthetic skeleton action set: determinism, layout, anatomy, difficulty, output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run

from mksgn.errors import MksgnError
from mksgn.train.data import synthetic
from mksgn.train.data.body_selection import select_bodies
from mksgn.train.data.modalities import bones, motion
from mksgn.train.data.ntu import benchmark_split, parse_sample_name
from mksgn.train.data.prepare import prepare_ntu
from mksgn.train.data.skeleton_file import read_skeleton_file

SMALL = dict(classes=4, samples_per_class=4, frames=16)


@pytest.fixture(scope="module")
def default_set() -> synthetic.SyntheticSet:
    return synthetic.generate()


def test_same_seed_same_bytes_other_seed_other_data() -> None:
    first, again = synthetic.generate(seed=3, **SMALL), synthetic.generate(seed=3, **SMALL)
    assert first.data.tobytes() == again.data.tobytes()
    assert first.names == again.names and first.split == again.split
    other = synthetic.generate(seed=4, **SMALL)
    assert not np.allclose(first.data, other.data)


def test_default_set_is_shaped_like_ntu() -> None:
    # How fast it is generated is a benchmark figure, not a unit test (it failed under load).
    dataset = synthetic.generate()
    assert dataset.data.shape == (320, 3, 64, 25, 2) and dataset.data.dtype == np.float32
    assert dataset.labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(dataset.labels), [40] * 8)
    assert len(dataset.class_names) == 8 and len(set(dataset.names)) == 320
    assert np.isfinite(dataset.data).all()


def test_names_encode_the_label_and_split_by_performer(default_set) -> None:
    cameras = set()
    for name, label, split in zip(
        default_set.names, default_set.labels, default_set.split, strict=True
    ):
        sample = parse_sample_name(name)
        assert sample.action == label + 1
        assert split == benchmark_split(sample, "ntu60-xsub")
        cameras.add(sample.camera)
    assert cameras == {1, 2, 3}
    for label in range(8):  # each class is split in half
        rows = default_set.labels == label
        assert np.sum(np.array(default_set.split)[rows] == "train") == 20


def test_centred_like_prepared_ntu(default_set) -> None:
    # joint 2 of actor 1 in the first frame is the origin
    assert not default_set.data[:, :, 0, 1, 0].any()
    spine_base_height = default_set.origins[:, 1] + default_set.data[:, 1, 0, 0, 0]
    assert spine_base_height.min() > 0.75 and spine_base_height.max() < 1.15
    assert (default_set.origins[:, 2] > 2.0).all() and (default_set.origins[:, 2] < 4.1).all()
    feet = default_set.camera_space(0)[:, 0, [15, 19], 1]
    assert abs(np.median(feet)) < 0.08  # the floor is at y = 0


def test_bone_lengths_are_plausible_and_constant(default_set) -> None:
    lengths = np.linalg.norm(bones(default_set.data)[..., 0], axis=1)  # (N, T, 25)
    typical = np.median(lengths, axis=(0, 1))
    expected = {  # 0-based joint: (what, low, high) in metres
        5: ("left upper arm", 0.22, 0.36),
        10: ("right forearm", 0.2, 0.32),
        13: ("left thigh", 0.35, 0.5),
        18: ("right shin", 0.35, 0.5),
        0: ("spine base to middle", 0.18, 0.3),
        1: ("spine middle to shoulder", 0.18, 0.3),
        3: ("neck to head", 0.08, 0.2),
        4: ("shoulder width half", 0.14, 0.24),
    }
    for joint, (what, low, high) in expected.items():
        assert low < typical[joint] < high, f"{what}: {typical[joint]:.3f} m"
    # within a sample a bone only changes by the joint noise
    spread = lengths[:, :, [0, 5, 6, 13, 14]].std(axis=1)
    assert np.median(spread) < 0.02


def test_two_person_classes_have_a_second_body(default_set) -> None:
    two_person = {k for k, name in enumerate(default_set.class_names) if "other person" in name} | {
        default_set.class_names.index("handshake")
    }
    assert len(two_person) == 3
    second_present = np.abs(default_set.data[..., 1]).sum(axis=(1, 3)) > 0  # (N, T)
    for label in range(8):
        rows = default_set.labels == label
        if label in two_person:
            assert second_present[rows].all()
        else:
            assert not default_set.data[rows][..., 1].any()


def ridge_accuracy(dataset: synthetic.SyntheticSet, features: np.ndarray) -> float:
    """Test accuracy of one-vs-all ridge regression (a linear classifier) on standardised features."""
    train = np.array(dataset.split) == "train"
    mean, scale = features[train].mean(0), features[train].std(0) + 1e-6
    a, b = (features[train] - mean) / scale, (features[~train] - mean) / scale
    targets = np.eye(dataset.num_classes)[dataset.labels[train]]
    dual = np.linalg.solve(a @ a.T + np.eye(len(a)), targets - targets.mean(0))
    predicted = (b @ (a.T @ dual)).argmax(1)
    return float(np.mean(predicted == dataset.labels[~train]))


def nearest_centroid_accuracy(dataset: synthetic.SyntheticSet, features: np.ndarray) -> float:
    """Test accuracy of a nearest-class-mean classifier on standardised features."""
    train = np.array(dataset.split) == "train"
    mean, scale = features[train].mean(0), features[train].std(0) + 1e-9
    normed = (features - mean) / scale
    centroids = np.stack(
        [normed[train][dataset.labels[train] == k].mean(0) for k in range(dataset.num_classes)]
    )
    distances = ((normed[~train][:, None] - centroids[None]) ** 2).sum(-1)
    return float(np.mean(distances.argmin(1) == dataset.labels[~train]))


def test_learnable_but_not_linearly_trivial(default_set) -> None:
    raw = default_set.data.reshape(len(default_set.data), -1)
    linear = ridge_accuracy(default_set, raw)
    speed = np.linalg.norm(motion(default_set.data), axis=1)  # (N, T, 25, M)
    motion_features = np.concatenate(
        [
            speed.mean(1).reshape(len(speed), -1),
            speed.std(1).reshape(len(speed), -1),
            default_set.data[:, 1].std(1).reshape(len(speed), -1),  # height changes (view-free)
        ],
        axis=1,
    )
    centroid = nearest_centroid_accuracy(default_set, motion_features)
    chance = 1 / default_set.num_classes
    assert linear < 1.0, "a linear classifier on raw joints solves the set"
    assert linear > 2 * chance
    assert centroid > 5 * chance, f"nearest centroid on motion features: {centroid:.3f}"


def test_fast_variants_and_the_class_limit() -> None:
    names = synthetic.class_names(synthetic.MAX_CLASSES)
    assert len(set(names)) == synthetic.MAX_CLASSES == 28
    assert names[14] == names[0] + " (fast)"
    dataset = synthetic.generate(classes=15, samples_per_class=6)
    # the fast wave (class 15) moves the right hand about twice as fast as the plain one
    hand_speed = np.linalg.norm(motion(dataset.data)[:, :, :, 11, 0], axis=1).mean(1)
    plain, fast = hand_speed[dataset.labels == 0].mean(), hand_speed[dataset.labels == 14].mean()
    assert fast > 1.4 * plain
    with pytest.raises(MksgnError, match="2 to 28"):
        synthetic.generate(classes=29)
    with pytest.raises(MksgnError, match="--samples-per-class 1"):
        synthetic.generate(samples_per_class=1)


def test_raw_skeleton_files_prepare_back_to_the_same_arrays(tmp_path: Path) -> None:
    dataset = synthetic.generate(seed=5, **SMALL)
    raw = tmp_path / "raw"
    synthetic.write_skeleton_dir(dataset, raw)
    assert sorted(p.name for p in raw.iterdir()) == sorted(f"{n}.skeleton" for n in dataset.names)
    for index in (0, len(dataset.names) - 1):
        selected = select_bodies(read_skeleton_file(raw / f"{dataset.names[index]}.skeleton"))
        np.testing.assert_allclose(selected, dataset.data[index].transpose(1, 3, 2, 0), atol=1e-6)

    out = tmp_path / "prepared.npz"
    prepare_ntu(raw, "ntu60-xsub", out, workers=1, frames=16, progress=False)
    ours = tmp_path / "synth.npz"
    synthetic.write_npz(dataset, ours)
    with np.load(out) as prepared, np.load(ours) as written:
        for split in ("train", "test"):
            order = np.argsort(prepared[f"names_{split}"])
            mine = np.argsort(written[f"names_{split}"])
            np.testing.assert_array_equal(
                prepared[f"names_{split}"][order], written[f"names_{split}"][mine]
            )
            np.testing.assert_allclose(
                prepared[f"x_{split}"][order], written[f"x_{split}"][mine], atol=1e-6
            )


def test_write_npz_holds_names_and_classes(tmp_path: Path) -> None:
    dataset = synthetic.generate(**SMALL)
    path = tmp_path / "set.npz"
    synthetic.write_npz(dataset, path)
    with np.load(path) as npz:
        assert npz["x_train"].shape == (8, 16, 150)
        assert npz["y_test"].shape == (8, 4)
        assert tuple(npz["names_train"]) == dataset.part("train").names
        assert tuple(npz["class_names"]) == dataset.class_names


def test_skeleton_folder_is_replaced_only_if_it_holds_skeletons(tmp_path: Path) -> None:
    dataset = synthetic.generate(**SMALL)
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "old.skeleton").write_text("0\n")
    synthetic.write_skeleton_dir(dataset, folder)
    assert not (folder / "old.skeleton").exists() and len(list(folder.iterdir())) == 16
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(MksgnError, match=r"notes\.txt"):
        synthetic.write_skeleton_dir(dataset, folder)
    assert (folder / "notes.txt").read_text() == "mine"


def test_cli_synth_npz(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "x.npz"
    args = ["data", "synth", "--out", str(out), "--classes", "3", "--samples-per-class", "4"]
    assert run([*args, "--frames", "20", "--seed", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["samples"] == 12 and summary["classes"] == 3 and summary["frames"] == 20
    assert (summary["train"], summary["test"], summary["format"]) == (6, 6, "npz")
    assert summary["path"] == str(out)
    with np.load(out) as npz:
        assert npz["x_train"].shape == (6, 20, 150)
    assert run(args[:4]) == 0
    assert "Wrote 320 samples (8 classes, 160 train / 160 test)" in capsys.readouterr().out


def test_cli_synth_skeleton_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "raw"
    args = ["data", "synth", "--out", str(out), "--format", "skeleton", "--classes", "2"]
    assert run([*args, "--samples-per-class", "3", "--frames", "12"]) == 0
    files = sorted(out.glob("*.skeleton"))
    assert len(files) == 6
    assert files[0].read_text().split("\n", 1)[0] == "12"
    assert "Wrote 6 samples" in capsys.readouterr().out


@pytest.mark.parametrize(
    "bad",
    [["--classes", "1"], ["--frames", "5"], ["--samples-per-class", "0"], ["--format", "csv"]],
)
def test_cli_synth_usage_errors_exit_2(
    bad: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert run(["data", "synth", "--out", str(tmp_path / "x.npz"), *bad]) == 2
    assert "Invalid value" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_cli_synth_too_many_classes_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert run(["data", "synth", "--out", str(tmp_path / "x.npz"), "--classes", "40"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: --classes 40") and "28" in err
    assert not (tmp_path / "x.npz").exists()
