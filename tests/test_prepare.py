"""`mksgn data prepare` end to end on a generated raw NTU folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run

from mksgn.benchmarks.support.raw_files import realistic_sequence
from mksgn.train.data.body_selection import select_bodies
from mksgn.train.data.prepare import PrepareSummary, SkippedFile, prepare_ntu
from mksgn.train.data.skeleton_file import read_skeleton_file, write_skeleton_file

# ntu60-xsub: performers 1 and 2 train, 3 test.
GOOD = {
    "S001C001P001R001A001": 1,
    "S001C002P002R001A002": 1,
    "S002C003P001R002A050": 2,
    "S003C001P003R001A003": 1,
    "S004C002P003R002A060": 2,
}
MISSING_LISTED = "S001C002P005R002A008"  # on the official missing-skeleton list
NO_BODY = "S005C001P001R001A004"
TRUNCATED = "S005C001P003R001A005"
NTU120_ONLY = "S018C001P001R001A001"
TRUNCATED_AT_LINE = 101


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    """A raw folder with good files (one in a subfolder) and one file of every kind to skip."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "raw"
    for index, (name, bodies) in enumerate(GOOD.items()):
        joints = realistic_sequence(rng, 70 + 5 * index, bodies)
        joints[:2] = 0  # frames without a body, dropped before padding
        sub = folder / "part2" if index == 4 else folder
        write_skeleton_file(sub / f"{name}.skeleton", joints)
    # Skipped by name before parsing: the content does not matter.
    (folder / f"{MISSING_LISTED}.skeleton").write_text("garbage\n")
    write_skeleton_file(folder / f"{NO_BODY}.skeleton", np.zeros((30, 1, 25, 3)))
    write_skeleton_file(folder / f"{TRUNCATED}.skeleton", realistic_sequence(rng, 40, 1))
    truncated = folder / f"{TRUNCATED}.skeleton"
    lines = truncated.read_text().splitlines()[: TRUNCATED_AT_LINE - 1]
    truncated.write_text("\n".join(lines) + "\n")
    write_skeleton_file(folder / f"{NTU120_ONLY}.skeleton", realistic_sequence(rng, 30, 1))
    return folder


def test_prepare_writes_ctrgcn_npz_and_reports_skipped_files(
    raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "NTU60_CS.npz"
    args = ["data", "prepare", "--raw", str(raw), "--benchmark", "ntu60-xsub", "--out", str(out)]
    assert run([*args, "--json", "--workers", "2"]) == 0
    report = json.loads(capsys.readouterr().out)

    assert report["files_found"] == 9
    assert report["not_in_benchmark"] == 1
    assert report["kept"] == {"train": 3, "test": 2}
    assert report["skipped_counts"] == {
        "missing skeleton list": 1,
        "no usable body": 1,
        "malformed": 1,
    }
    skipped = {entry["file"]: entry for entry in report["skipped"]}
    assert skipped[f"{TRUNCATED}.skeleton"]["detail"].startswith(f"line {TRUNCATED_AT_LINE}:")
    assert skipped[f"{NO_BODY}.skeleton"]["reason"] == "no usable body"
    assert skipped[f"{MISSING_LISTED}.skeleton"]["reason"] == "missing skeleton list"
    assert report["samples_per_class"]["train"] == {"min": 0, "max": 1}
    assert report["empty_frames_dropped"] == 2 * len(GOOD)
    assert report["files_per_second"] > 0

    with np.load(out) as npz:
        assert npz["x_train"].shape == (3, 300, 150) and npz["x_train"].dtype == np.float32
        assert npz["x_test"].shape == (2, 300, 150)
        assert npz["y_train"].shape == (3, 60) and npz["y_test"].shape == (2, 60)
        names_train = list(npz["names_train"])
        assert names_train == [
            "S001C001P001R001A001",
            "S001C002P002R001A002",
            "S002C003P001R002A050",
        ]
        assert list(npz["names_test"]) == ["S003C001P003R001A003", "S004C002P003R002A060"]
        np.testing.assert_array_equal(npz["y_train"].argmax(1), [0, 1, 49])
        np.testing.assert_array_equal(npz["y_test"].argmax(1), [2, 59])
        assert set(np.unique(npz["y_train"])) == {0.0, 1.0}
        assert npz["y_train"].sum() == 3
        x_test = npz["x_test"]

    # The last test sample (in a subfolder, two bodies) is its selected bodies, zero-padded.
    expected = select_bodies(read_skeleton_file(raw / "part2" / "S004C002P003R002A060.skeleton"))
    assert expected.shape == (88, 2, 25, 3)
    sample = x_test[1].reshape(300, 2, 25, 3)
    np.testing.assert_array_equal(sample[:88], expected)
    assert np.all(sample[88:] == 0)


def test_human_summary_names_skipped_files(
    raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "xview.npz"
    args = ["data", "prepare", "--raw", str(raw), "--benchmark", "ntu60-xview", "--out", str(out)]
    assert run([*args, "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "kept:         train 3, test 2" in captured.out  # cameras 2, 3 train; camera 1 test
    for name in (MISSING_LISTED, NO_BODY, TRUNCATED):
        assert f"{name}.skeleton" in captured.out
    assert f"line {TRUNCATED_AT_LINE}: unexpected end of file" in captured.out
    assert "Parsing .skeleton files" in captured.err  # the progress bar


def test_strict_stops_at_the_malformed_file(
    raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out" / "strict.npz"
    args = ["data", "prepare", "--raw", str(raw), "--benchmark", "ntu60-xsub", "--out", str(out)]
    assert run([*args, "--strict", "--workers", "2"]) == 1
    err = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert err.startswith("Error: ")
    assert f"{TRUNCATED}.skeleton: line {TRUNCATED_AT_LINE}:" in err
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # no temporary file left either


def test_ntu120_keeps_its_extra_setups(raw: Path, tmp_path: Path) -> None:
    summary = prepare_ntu(raw, "ntu120-xset", tmp_path / "xset.npz", workers=1, progress=False)
    assert summary.not_in_benchmark == 0
    assert summary.kept == {"train": 3, "test": 3}  # even setups train: S002, S004, S018
    with np.load(tmp_path / "xset.npz") as npz:
        assert npz["y_train"].shape == (3, 120)
    assert summary.to_dict()["num_classes"] == 120


def test_workers_do_not_change_the_output(raw: Path, tmp_path: Path) -> None:
    for workers in (1, 3):
        prepare_ntu(raw, "ntu60-xsub", tmp_path / f"{workers}.npz", workers=workers, progress=False)
    with np.load(tmp_path / "1.npz") as one, np.load(tmp_path / "3.npz") as three:
        for key in one.files:
            np.testing.assert_array_equal(one[key], three[key])


def test_empty_folder_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out.npz"
    args = ["data", "prepare", "--raw", str(empty), "--benchmark", "ntu60-xsub", "--out", str(out)]
    assert run(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "no .skeleton files found" in err and str(empty) in err
    assert not out.exists()


def test_no_usable_sample_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    raw = tmp_path / "raw"
    write_skeleton_file(raw / f"{NO_BODY}.skeleton", np.zeros((5, 1, 25, 3)))
    write_skeleton_file(raw / f"{NTU120_ONLY}.skeleton", np.ones((5, 1, 25, 3)))
    out = tmp_path / "out.npz"
    args = ["data", "prepare", "--raw", str(raw), "--benchmark", "ntu60-xsub", "--out", str(out)]
    assert run(args) == 1
    err = capsys.readouterr().err
    assert "no usable ntu60-xsub sample" in err and "no usable body: 1" in err
    assert not out.exists()


def test_only_other_dataset_files_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    raw = tmp_path / "raw"
    write_skeleton_file(raw / f"{NTU120_ONLY}.skeleton", np.ones((5, 1, 25, 3)))
    assert run(["data", "prepare", "--raw", str(raw), "--benchmark", "ntu60-xview", "--out",
                str(tmp_path / "o.npz")]) == 1  # fmt: skip
    assert "none of the 1 .skeleton files belongs to ntu60-xview" in capsys.readouterr().err


def test_long_samples_are_cut_to_the_frame_count(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    rng = np.random.default_rng(1)
    write_skeleton_file(raw / "S001C001P001R001A001.skeleton", realistic_sequence(rng, 40, 1))
    write_skeleton_file(raw / "S001C001P003R001A001.skeleton", realistic_sequence(rng, 20, 1))
    summary = prepare_ntu(raw, "ntu60-xsub", tmp_path / "o.npz", frames=32, progress=False)
    assert summary.longer_than_frames == 1
    with np.load(tmp_path / "o.npz") as npz:
        assert npz["x_train"].shape == (1, 32, 150)
        assert np.any(npz["x_train"][0, :, :75] != 0, axis=1).all()  # actor 1 in all 32 frames
        assert np.all(npz["x_train"][0, :, 75:] == 0)  # and no second actor
        assert np.all(npz["x_test"][0, 20:] == 0) and np.any(npz["x_test"][0, 19] != 0)


def test_an_empty_split_is_written_with_a_warning(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    rng = np.random.default_rng(2)
    write_skeleton_file(raw / "S001C001P001R001A007.skeleton", realistic_sequence(rng, 30, 1))
    summary = prepare_ntu(raw, "ntu60-xsub", tmp_path / "o.npz", progress=False)
    assert summary.warnings() == [
        "the test split is empty: no kept sample falls in it for ntu60-xsub"
    ]
    assert "warning:      the test split is empty" in summary.format()
    with np.load(tmp_path / "o.npz") as npz:
        assert npz["x_train"].shape == (1, 300, 150) and npz["x_test"].shape == (0, 300, 150)
        assert npz["y_test"].shape == (0, 60)


def test_long_missing_list_is_counted_not_listed_in_the_human_summary() -> None:
    summary = PrepareSummary("ntu60-xsub", "raw", "o.npz", num_classes=60, frames=300)
    summary.skipped = [
        SkippedFile(f"S001C001P{p:03d}R001A001.skeleton", "missing skeleton list")
        for p in range(21)
    ]
    summary.skipped.append(SkippedFile("S001C001P001R001A002.skeleton", "malformed", "line 3: x"))
    text = summary.format()
    assert "S001C001P005R001A001" not in text
    assert "21 names on the official missing-skeleton list; --json lists them" in text
    assert "S001C001P001R001A002.skeleton  [malformed]: line 3: x" in text
    assert len(summary.to_dict()["skipped"]) == 22
