"""`--shard i/n` and `mksgn merge`: a sharded simulate or energy run, merged, equals the single
run over all samples (fixed-point emulator, whose quantisation depends on the input range)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run
from model_fixtures import save_model, spiking_student

from mksgn.errors import MksgnError
from mksgn.targets.shard import Shard, parse_shard
from mksgn.train.data import synthetic


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny MK-SGN exported to NIR, 7 synthetic test samples, and the same samples as an
    --input array whose largest |x| is in the last sample only (so a shard's own range would
    quantise differently from the whole run's)."""
    folder = tmp_path_factory.mktemp("shard")
    save_model(spiking_student("mk-sgn"), folder / "mk.pt")
    assert run(["export", str(folder / "mk.pt"), "--nir", str(folder / "mk.nir")]) == 0
    data = folder / "synthetic.npz"
    synthetic.write_npz(synthetic.generate(classes=3, samples_per_class=5, frames=10), data)
    from mksgn.convert.nir_io import read_nir
    from mksgn.targets.inputs import data_inputs

    inputs, _ = data_inputs(data, read_nir(folder / "mk.nir"), folder / "mk.nir", 7)
    inputs = np.array(inputs)
    inputs[-1] *= 3.0
    np.save(folder / "x.npy", inputs)
    return dict(nir=folder / "mk.nir", data=data, input=folder / "x.npy", folder=folder)


def json_of(capsys: pytest.CaptureFixture[str], args: list[str]) -> dict:
    """Run a command with --json and return what it printed."""
    capsys.readouterr()
    assert run([*args, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_parse_shard_and_bounds() -> None:
    """i/n is 1-based; slices are contiguous, cover every sample once and are never empty."""
    assert parse_shard(" 2/3 ") == Shard(2, 3)
    for bad in ("0/3", "4/3", "2", "a/b", "-1/2"):
        with pytest.raises(MksgnError):
            parse_shard(bad)
    bounds = [Shard(i, 3).bounds(7) for i in (1, 2, 3)]
    assert bounds == [(0, 2), (2, 4), (4, 7)]
    with pytest.raises(MksgnError, match="empty"):
        Shard(5, 8).bounds(4)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("source", ["data", "input"])
def test_simulate_shards_merge_to_the_single_run(files, tmp_path, capsys, source: str) -> None:
    """Three loihi-emu shards (in shuffled order) merge into the single run's npz (every array
    bit for bit), predictions, accuracy and spike counts; the shard holding the largest input
    would have quantised differently on its own."""
    base = ["simulate", str(files["nir"]), f"--{source}", str(files[source])]
    base += ["--backend", "loihi-emu", "--record", "layer3.lif", "--batch-size", "2"]
    single = json_of(capsys, [*base, "--out", str(tmp_path / "single.npz")])
    parts = []
    for index in (3, 1, 2):
        part = tmp_path / f"part{index}.npz"
        summary = json_of(capsys, [*base, "--shard", f"{index}/3", "--out", str(part)])
        shard = summary["shard"]
        assert shard["index"] == index and shard["total_samples"] == single["samples"]
        assert summary["samples"] == shard["stop"] - shard["start"] > 0
        parts.append(str(part))
    merged = json_of(capsys, ["merge", str(tmp_path / "merged.npz"), *parts])
    for key in ("samples", "predictions", "spike_counts", "backend", "time_steps"):
        assert merged[key] == single[key], key
    assert ("accuracy" in single) == (source == "data")
    assert merged.get("accuracy") == single.get("accuracy")
    with np.load(tmp_path / "single.npz") as one, np.load(tmp_path / "merged.npz") as other:
        assert sorted(one.files) == sorted(other.files)
        for key in one.files:
            np.testing.assert_array_equal(other[key], one[key], err_msg=key)
    if source == "input":
        # The last shard's own range (3x the others') would give another fixed-point network.
        from mksgn.convert.lava_graph import build_plan
        from mksgn.convert.nir_io import read_nir
        from mksgn.targets.emulator import EmulatorTarget

        plan = build_plan(read_nir(files["nir"]))
        x = np.load(files["input"])
        alone = EmulatorTarget().run_plan(plan, x[:4]).extra["quantisation"]
        whole = EmulatorTarget().run_plan(plan, x).extra["quantisation"]
        assert alone != whole


@pytest.mark.timeout(300)
def test_energy_shards_merge_to_the_single_run(files, tmp_path, capsys) -> None:
    """Two energy shards merged give the single run's report, number for number (wall time
    aside), in the file and on stdout."""
    base = ["energy", str(files["nir"]), "--input", str(files["input"]), "--backend", "loihi-emu"]
    single = json_of(capsys, [*base, "--out", str(tmp_path / "single.json")])
    parts = []
    for index in (1, 2):
        parts.append(str(tmp_path / f"e{index}.json"))
        assert run([*base, "--shard", f"{index}/2", "--out", parts[-1]]) == 0
    merged = json_of(capsys, ["merge", str(tmp_path / "merged.json"), *parts])
    assert json.loads((tmp_path / "merged.json").read_text()) == merged
    assert json.loads((tmp_path / "single.json").read_text()) == single
    for report in (single, merged):
        report["simulated"].pop("wall_s_per_sample")
    assert merged == single
    assert single["samples"] == len(np.load(files["input"])) and single["per_sample"]["acs"] > 0


def test_merge_and_shard_errors(files, tmp_path, capsys) -> None:
    """A missing or repeated part, parts of different runs, a file that is no part, and --shard
    without --out are one Error line (or a usage error)."""
    base = ["simulate", str(files["nir"]), "--input", str(files["input"]), "--backend", "snntorch"]
    for index in (1, 2):
        assert run([*base, "--shard", f"{index}/2", "--out", str(tmp_path / f"p{index}.npz")]) == 0
    assert run([*base, "--shard", "1/3", "--out", str(tmp_path / "q1.npz")]) == 0
    p1, p2, q1 = (str(tmp_path / name) for name in ("p1.npz", "p2.npz", "q1.npz"))
    capsys.readouterr()
    cases = [
        ([p1], "missing 2/2"),
        ([p1, p1, p2], "repeated 1/2"),
        ([p1, q1], "count differ"),
        ([p1, str(files["input"])], "mix of"),
        ([str(files["data"])], "not written with --shard"),
    ]
    for parts, message in cases:
        assert run(["merge", str(tmp_path / "m.npz"), *parts]) == 1
        assert message in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()
    assert run([*base, "--shard", "1/2"]) == 2
    assert run([*base, "--shard", "3/2", "--out", str(tmp_path / "x.npz")]) == 2
    assert run([*base, "--shard", "1/9", "--out", str(tmp_path / "x.npz")]) == 1
    assert "empty" in capsys.readouterr().err
