"""Readers of the preprocessed skeleton formats: round trips, one Dataset interface, clear errors."""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import run

from mksgn.errors import MksgnError
from mksgn.train.data import formats
from mksgn.train.data.dataset import SkeletonDataset
from mksgn.train.data.formats import (
    SkeletonArrays,
    class_names,
    detect_format,
    load_split,
    num_classes,
    open_dataset,
    write_ctrgcn_npz,
)

CLASSES = 5


def skeletons(rng: np.random.Generator, n: int, frames: int, bodies: int = 2) -> np.ndarray:
    """Random (n, 3, T, 25, M) float32 skeletons with zero tails and an empty second body."""
    data = rng.normal(size=(n, 3, frames, 25, bodies)).astype(np.float32)
    data[:, :, frames - 2 :] = 0
    if bodies == 2:
        data[0, ..., 1] = 0
    return data


def split_arrays(rng: np.random.Generator, n: int, frames: int, prefix: str) -> SkeletonArrays:
    """A split with labels covering several classes and NTU-like names."""
    labels = np.arange(n, dtype=np.int64) % CLASSES
    names = tuple(f"{prefix}S001C001P{i:03d}R001A{label + 1:03d}" for i, label in enumerate(labels))
    return SkeletonArrays(skeletons(rng, n, frames), labels, names)


@pytest.fixture
def two_splits() -> tuple[SkeletonArrays, SkeletonArrays]:
    """Train (7 samples) and test (4 samples), 12 frames."""
    rng = np.random.default_rng(0)
    return split_arrays(rng, 7, 12, "tr"), split_arrays(rng, 4, 12, "te")


def assert_same(loaded: SkeletonArrays, expected: SkeletonArrays) -> None:
    """Identical data, labels and names."""
    assert loaded.data.dtype == np.float32
    np.testing.assert_array_equal(loaded.data, expected.data)
    np.testing.assert_array_equal(loaded.labels, expected.labels)
    assert loaded.labels.dtype == np.int64
    assert loaded.names == expected.names


def write_stgcn(
    folder: Path, train: SkeletonArrays, test: SkeletonArrays, protocol: int = 4
) -> Path:
    """An ST-GCN folder: {train,val}_data_joint.npy + {train,val}_label.pkl (names, labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, part in (("train", train), ("val", test)):
        np.save(folder / f"{prefix}_data_joint.npy", part.data)
        with open(folder / f"{prefix}_label.pkl", "wb") as handle:
            pickle.dump((list(part.names), [int(x) for x in part.labels]), handle, protocol)
    return folder


def pyskl_annotation(name: str, label: int, keypoint: np.ndarray) -> dict:
    """A PYSKL annotation as its NTU 3D pickles hold them."""
    return dict(
        frame_dir=name, label=label, keypoint=keypoint, total_frames=keypoint.shape[1], img_shape=()
    )


def write_pickle(path: Path, content: object) -> Path:
    """Pickle `content` to `path`."""
    path.write_bytes(pickle.dumps(content, protocol=4))
    return path


# ----------------------------------------------------------------------------- CTR-GCN npz


@pytest.mark.parametrize("compressed", [True, False])
def test_ctrgcn_npz_round_trip(tmp_path: Path, two_splits, compressed: bool) -> None:
    train, test = two_splits
    path = tmp_path / "data.npz"
    names = tuple(f"action {i}" for i in range(CLASSES))
    write_ctrgcn_npz(path, train, test, CLASSES, class_names=names, compressed=compressed)
    assert detect_format(path) == "ctrgcn-npz"
    assert_same(load_split(path, "train"), train)
    assert_same(load_split(path, "test"), test)
    assert class_names(path) == names
    assert num_classes(path) == CLASSES


def test_ctrgcn_streams_in_chunks(tmp_path: Path, two_splits, monkeypatch) -> None:
    train, test = two_splits
    path = tmp_path / "data.npz"
    write_ctrgcn_npz(path, train, test, CLASSES)
    monkeypatch.setattr(formats.base, "CHUNK_BYTES", 2 * 12 * 150 * 4)  # two samples per chunk
    assert_same(load_split(path, "train"), train)
    chunks = list(open_dataset(path).iter_chunks("train"))
    assert [len(c) for c in chunks] == [2, 2, 2, 1]
    assert_same(
        SkeletonArrays(
            np.concatenate([c.data for c in chunks]),
            np.concatenate([c.labels for c in chunks]),
            sum((c.names for c in chunks), ()),
        ),
        train,
    )


def test_ctrgcn_single_body_and_integer_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    one_body = skeletons(rng, 3, 6, bodies=1)
    x = formats.to_ctrgcn_layout(one_body)
    path = tmp_path / "plain.npz"
    np.savez(path, x_train=x, y_train=np.array([0, 7, 2]), x_test=x[:1], y_test=np.array([3]))
    loaded = load_split(path, "train")
    assert loaded.data.shape == (3, 3, 6, 25, 2)
    np.testing.assert_array_equal(loaded.data[..., :1], one_body)
    assert not loaded.data[..., 1].any()
    assert loaded.labels.tolist() == [0, 7, 2]
    assert loaded.names is None
    assert num_classes(path) == 8
    assert class_names(path) is None


def ctrgcn_error(tmp_path: Path, **arrays: np.ndarray) -> str:
    """The MksgnError message of loading an npz with these arrays."""
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    with pytest.raises(MksgnError) as error:
        load_split(path)
    return str(error.value)


def valid_npz_arrays() -> dict[str, np.ndarray]:
    """Keys of a minimal valid CTR-GCN npz (2 train, 1 test samples, 4 frames, 3 classes)."""
    x = np.zeros((2, 4, 150), np.float32)
    return dict(
        x_train=x, y_train=np.eye(3, dtype=np.float32)[:2], x_test=x[:1], y_test=np.eye(3)[:1]
    )


def test_ctrgcn_errors_name_file_key_and_shape(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    arrays = valid_npz_arrays()
    arrays["x_train"] = np.zeros((10, 64, 75), np.float32)
    arrays["y_train"] = np.eye(3)[np.zeros(10, int)]
    assert ctrgcn_error(tmp_path, **arrays) == (
        f"{path}: key 'x_train' has shape (10, 64, 75), expected (N, T, 150) = "
        "2 bodies x 25 joints x xyz"
    )
    arrays = valid_npz_arrays()
    del arrays["x_test"]
    message = ctrgcn_error(tmp_path, **arrays)
    assert message.startswith(f"{path}: key 'x_test' is missing (keys present: x_train, y_test")
    arrays = valid_npz_arrays()
    arrays["y_test"] = np.eye(3)[[0, 1]]
    message = ctrgcn_error(tmp_path, **arrays)
    assert message.startswith(f"{path}: key 'y_test' has shape (2, 3)")
    assert "with N = 1 as in 'x_test'" in message
    arrays = valid_npz_arrays()
    arrays["y_train"] = np.zeros((2, 3), np.float32)
    assert "key 'y_train' row 0 has no positive entry" in ctrgcn_error(tmp_path, **arrays)
    arrays = valid_npz_arrays()
    arrays["y_test"] = np.eye(4)[:1]
    assert "different numbers of classes (3 and 4 columns)" in ctrgcn_error(tmp_path, **arrays)
    arrays = valid_npz_arrays()
    arrays["x_train"] = arrays["x_train"].astype(np.int16)
    assert "key 'x_train' has dtype int16, expected float32" in ctrgcn_error(tmp_path, **arrays)


def test_ctrgcn_header_is_checked_before_allocating(tmp_path: Path) -> None:
    # A member whose header claims 10^7 samples of 300 frames (18 TB) but holds 16 bytes.
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**7, 300, 150)}
    )
    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_train.npy", header.getvalue() + bytes(16))
        for key, value in valid_npz_arrays().items():
            if key != "x_train":
                buffer = io.BytesIO()
                np.save(buffer, value)
                archive.writestr(f"{key}.npy", buffer.getvalue())
    with pytest.raises(MksgnError, match=r"key 'x_train' is truncated: its header says shape"):
        load_split(path)


def test_not_a_zip_npz(tmp_path: Path) -> None:
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(MksgnError, match=r"broken\.npz: not a readable \.npz \(zip\) archive"):
        load_split(path)


# ------------------------------------------------------------------------ ST-GCN / 2s-AGCN


def test_stgcn_round_trip_from_folder_or_either_npy(tmp_path: Path, two_splits) -> None:
    train, test = two_splits
    folder = write_stgcn(tmp_path / "ntu", train, test)
    for given in (folder, folder / "train_data_joint.npy", folder / "val_data_joint.npy"):
        assert detect_format(given) == "stgcn-npy"
        assert_same(load_split(given, "train"), train)
        assert_same(load_split(given, "test"), test)
    assert num_classes(folder) == CLASSES
    assert class_names(folder) is None
    # Memory-mapped, not read: NTU's train_data_joint.npy is several GB.
    assert isinstance(load_split(folder).data, np.memmap)


def test_stgcn_python2_label_pickle(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    folder = tmp_path / "old"
    folder.mkdir()
    np.save(folder / "train_data_joint.npy", skeletons(rng, 2, 5))
    # What ST-GCN's Python 2 gendata wrote: protocol 0 with byte strings.
    (folder / "train_label.pkl").write_bytes(
        b"((lp0\nS'S001C001P001R001A001.skeleton'\np1\naS'caf\\xe9'\np2\na(lp3\nI0\naI5\natp4\n."
    )
    loaded = load_split(folder / "train_data_joint.npy", "train")
    assert loaded.names == ("S001C001P001R001A001.skeleton", "café")
    assert loaded.labels.tolist() == [0, 5]
    assert num_classes(folder) == 6
    with pytest.raises(MksgnError, match=r"val_data_joint\.npy: missing; the 'test' split"):
        load_split(folder, "test")


def test_stgcn_errors(tmp_path: Path, two_splits) -> None:
    train, test = two_splits
    folder = write_stgcn(tmp_path / "ntu", train, test)
    with open(folder / "val_label.pkl", "wb") as handle:
        pickle.dump((list(train.names), train.labels.tolist()), handle)
    with pytest.raises(MksgnError) as error:
        load_split(folder, "train")
    assert str(error.value) == (
        f"{folder / 'val_label.pkl'}: 7 labels but {folder / 'val_data_joint.npy'} holds 4 "
        "samples; the label file and the data file must come from the same split"
    )
    np.save(folder / "val_data_joint.npy", np.zeros((4, 3, 8, 18, 2), np.float32))
    with pytest.raises(MksgnError) as error:
        load_split(folder, "train")
    assert str(error.value).startswith(
        f"{folder / 'val_data_joint.npy'}: array has shape (4, 3, 8, 18, 2), expected "
        "(N, 3, T, 25, M)"
    )
    (folder / "val_data_joint.npy").unlink()
    (folder / "train_label.pkl").unlink()
    with pytest.raises(MksgnError, match=r"train_label\.pkl: missing; ST-GCN data"):
        load_split(folder)
    np.save(tmp_path / "x.npy", train.data)
    with pytest.raises(MksgnError, match=r"x\.npy: an ST-GCN array must be named train_data_joint"):
        load_split(tmp_path / "x.npy")


def test_stgcn_truncated_npy_is_refused_from_its_header(tmp_path: Path, two_splits) -> None:
    train, test = two_splits
    folder = write_stgcn(tmp_path / "ntu", train, test)
    raw = (folder / "train_data_joint.npy").read_bytes()
    (folder / "train_data_joint.npy").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(MksgnError, match=r"train_data_joint\.npy: not a readable \.npy array"):
        load_split(folder)


# ------------------------------------------------------------------------------------ PYSKL


def pyskl_content(rng: np.random.Generator) -> tuple[dict, dict[str, np.ndarray]]:
    """Five annotations (1 or 2 bodies, 3 to 6 frames, float16) under two benchmarks."""
    annotations, keypoints = [], {}
    for index, (bodies, frames) in enumerate([(1, 4), (2, 6), (1, 3), (2, 5), (1, 6)]):
        name = f"S001C00{index}P001R001A00{index + 1}"
        keypoints[name] = rng.normal(size=(bodies, frames, 25, 3)).astype(np.float16)
        annotations.append(pyskl_annotation(name, index % 3, keypoints[name]))
    names = [a["frame_dir"] for a in annotations]
    split = {
        "xsub_train": names[:3],
        "xsub_val": names[3:],
        "xview_train": names[1:],
        "xview_val": names[:1],
    }
    return dict(split=split, annotations=annotations), keypoints


def expected_pyskl(names: list[str], keypoints: dict[str, np.ndarray], labels: list[int]):
    """Hand-padded (N, 3, T_max, 25, 2) float32 arrays for `names`."""
    frames = max(keypoints[n].shape[1] for n in names)
    data = np.zeros((len(names), 3, frames, 25, 2), np.float32)
    for i, name in enumerate(names):
        for body in range(keypoints[name].shape[0]):
            for t in range(keypoints[name].shape[1]):
                data[i, :, t, :, body] = keypoints[name][body, t].T
    return SkeletonArrays(data, np.array(labels, np.int64), tuple(names))


def test_pyskl_round_trip_with_benchmarks(tmp_path: Path) -> None:
    content, keypoints = pyskl_content(np.random.default_rng(3))
    path = write_pickle(tmp_path / "ntu60_3danno.pkl", content)
    assert detect_format(path) == "pyskl-pkl"
    split = content["split"]
    assert_same(
        load_split(path, "train", benchmark="xsub"),
        expected_pyskl(split["xsub_train"], keypoints, [0, 1, 2]),
    )
    assert_same(
        load_split(path, "test", benchmark="xsub"),
        expected_pyskl(split["xsub_val"], keypoints, [0, 1]),
    )
    assert_same(
        load_split(path, "train", benchmark="xview"),
        expected_pyskl(split["xview_train"], keypoints, [1, 2, 0, 1]),
    )
    assert num_classes(path) == 3
    with pytest.raises(MksgnError) as error:
        load_split(path, "train")
    assert str(error.value).startswith(
        f"{path}: holds several benchmarks ('xsub', 'xview'); choose one"
    )
    with pytest.raises(MksgnError, match=r"no benchmark 'xset' .* available: 'xsub', 'xview'"):
        load_split(path, "train", benchmark="xset")


def test_pyskl_single_benchmark_is_chosen(tmp_path: Path) -> None:
    content, keypoints = pyskl_content(np.random.default_rng(4))
    content["split"] = {"xsub_train": content["split"]["xsub_train"]}
    path = write_pickle(tmp_path / "one.pkl", content)
    assert_same(
        load_split(path), expected_pyskl(content["split"]["xsub_train"], keypoints, [0, 1, 2])
    )
    assert open_dataset(path).splits == ("train",)


ANNOTATION_1 = r"annotation 1 \('S001C001P001R001A002'\)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda a: a.update(keypoint=np.zeros((1, 10, 17, 2), np.float16)),
            rf"{ANNOTATION_1}: keypoint has shape \(1, 10, 17, 2\), "
            r"expected \(M, T, 25, 3\).*2D pose pickle",
        ),
        (
            lambda a: a.update(keypoint=np.zeros((3, 10, 25, 3), np.float32)),
            rf"{ANNOTATION_1}: keypoint has shape \(3, 10, 25, 3\), expected \(M, T, 25, 3\) = bodies \(1 or 2\)",
        ),
        (lambda a: a.pop("label"), r"annotation 1 has no 'label'"),
        (lambda a: a.update(label=-1), rf"{ANNOTATION_1}: label -1 is not a 0-based integer"),
        (
            lambda a: a.update(total_frames=99),
            rf"{ANNOTATION_1}: total_frames is 99 but keypoint has 6 frames",
        ),
    ],
)
def test_pyskl_annotation_errors(tmp_path: Path, change, message: str) -> None:
    content, _ = pyskl_content(np.random.default_rng(5))
    change(content["annotations"][1])
    path = write_pickle(tmp_path / "bad.pkl", content)
    with pytest.raises(MksgnError, match=rf"^{re.escape(str(tmp_path / 'bad.pkl'))}: {message}"):
        load_split(path, benchmark="xsub")


def test_pyskl_structure_errors(tmp_path: Path) -> None:
    path = write_pickle(tmp_path / "list.pkl", [1, 2])
    with pytest.raises(MksgnError, match="not a PYSKL annotation pickle"):
        load_split(path)
    content, _ = pyskl_content(np.random.default_rng(6))
    content["split"]["xsub_val"] = ["nobody"]
    path = write_pickle(tmp_path / "dangling.pkl", content)
    with pytest.raises(
        MksgnError, match="split 'xsub_val' lists 'nobody', which has no annotation"
    ):
        load_split(path, benchmark="xsub")


# --------------------------------------------------------- detection, Dataset, command line


def test_unknown_format_lists_supported(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("hello")
    with pytest.raises(MksgnError) as error:
        detect_format(path)
    assert str(error.value).startswith(f"{path}: unknown dataset format. Supported formats:")
    for name in ("ctrgcn-npz", "stgcn-npy", "pyskl-pkl"):
        assert name in str(error.value)
    with pytest.raises(MksgnError, match=r"has no train_data_joint\.npy"):
        detect_format(tmp_path)


def test_benchmark_only_for_pyskl(tmp_path: Path, two_splits) -> None:
    path = tmp_path / "data.npz"
    write_ctrgcn_npz(path, *two_splits, CLASSES)
    with pytest.raises(MksgnError, match="can only be chosen in a PYSKL pickle"):
        load_split(path, benchmark="xsub")


def test_one_dataset_interface_over_all_formats(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    data = skeletons(rng, 3, 6)
    labels = np.array([2, 0, 1])
    names = ("a", "b", "c")
    part = SkeletonArrays(data, labels, names)
    npz = tmp_path / "d.npz"
    write_ctrgcn_npz(npz, part, part, 3)
    folder = write_stgcn(tmp_path / "stgcn", part, part)
    annotations = [
        pyskl_annotation(n, int(lab), x.transpose(3, 1, 2, 0))
        for n, lab, x in zip(names, labels, data, strict=True)
    ]
    pkl = write_pickle(
        tmp_path / "p.pkl", dict(split={"xsub_train": list(names)}, annotations=annotations)
    )

    def flip_x(sample: np.ndarray) -> np.ndarray:
        sample[0] *= -1  # in place: the dataset must hand over a private copy
        return sample

    for path in (npz, folder, pkl):
        dataset = SkeletonDataset(path, "train", transform=flip_x)
        assert len(dataset) == 3
        assert dataset.num_classes == 3
        assert dataset.names == names
        for index in range(3):
            sample, label = dataset[index]
            assert sample.dtype == torch.float32
            assert sample.shape == (3, 6, 25, 2)
            assert label == labels[index]
            expected = data[index].copy()
            expected[0] *= -1
            np.testing.assert_array_equal(sample.numpy(), expected)
        np.testing.assert_array_equal(dataset[0][0].numpy()[0], -data[0][0])  # not flipped twice


def test_cli_inspect_errors_are_one_line(tmp_path: Path, capsys) -> None:
    arrays = valid_npz_arrays()
    arrays["x_test"] = np.zeros((1, 4, 75), np.float32)
    np.savez(tmp_path / "bad.npz", **arrays)
    (tmp_path / "notes.txt").write_text("x")
    content, _ = pyskl_content(np.random.default_rng(8))
    content["annotations"][0]["keypoint"] = np.zeros((1, 4, 25, 2), np.float16)
    write_pickle(tmp_path / "bad.pkl", content)
    expectations = {
        "bad.npz": "key 'x_test' has shape (1, 4, 75), expected (N, T, 150)",
        "notes.txt": "unknown dataset format",
        "bad.pkl": "keypoint has shape (1, 4, 25, 2), expected (M, T, 25, 3)",
    }
    for name, fragment in expectations.items():
        assert run(["data", "inspect", str(tmp_path / name)]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith(f"Error: {tmp_path / name}: ")
        assert fragment in lines[0]
