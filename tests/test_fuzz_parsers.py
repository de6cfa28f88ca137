"""Fuzzed readers of untrusted files: every mutated file ends in success or MksgnError, within a
time limit and without memory sized by a number read from the file (benchmarks/support/fuzz/).

The normal suite draws EXAMPLES mutations per reader; `python -m mksgn.benchmarks.reliability
--long` runs thousands. Below the property tests, each hole fuzzing found has its own test.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import time
import tracemalloc
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from cli_runner import run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mksgn.benchmarks.support.fuzz.cases import ERROR, MEMORY_LIMIT_BYTES, OK, run_case
from mksgn.benchmarks.support.fuzz.encoding import npy_with_header, split_npy
from mksgn.benchmarks.support.fuzz.mutators import flip
from mksgn.benchmarks.support.fuzz.runner import mutate
from mksgn.benchmarks.support.fuzz.seeds import INPUT_GRAPH_INDEX, nir_graphs, pyskl_content
from mksgn.benchmarks.support.fuzz.targets import CHECKPOINT, INPUT, NIR, NPZ, TARGETS, Target
from mksgn.benchmarks.support.graphs import lif
from mksgn.errors import MksgnError
from mksgn.isolation import call_in_child
from mksgn.train.data.safe_pickle import load_pickle

EXAMPLES = 40
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure here is reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[bytes]]:
    """Valid seed files of every target, written once."""
    root = tmp_path_factory.mktemp("seeds")
    return {t.name: t.make_seeds(root / t.name.replace(" ", "_")) for t in TARGETS}


def steps_for(target: Target) -> st.SearchStrategy:
    """1-3 (mutation name, choice) pairs for a target."""
    step = st.tuples(st.sampled_from(sorted(target.mutations)), st.integers(0, 2**31 - 1))
    return st.lists(step, min_size=1, max_size=3)


def check_target(target: Target, seeds: list[bytes], data, work: Path) -> None:
    """One drawn case: it ends ok or with MksgnError, in time, in bounded memory."""
    seed = seeds[data.draw(st.integers(0, len(seeds) - 1), label="seed")]
    steps = data.draw(steps_for(target), label="steps")
    path = target.write_case(work / "case", mutate(target, seed, steps))
    outcome = run_case(target.parse, path, timeout_s=30)
    assert outcome.kind in (OK, ERROR), f"{steps}: {outcome}"


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_seeds_parse(target: Target, seeds, tmp_path: Path) -> None:
    """The unmutated seeds are valid files: fuzzing starts from inputs that get deep."""
    for seed in seeds[target.name]:
        path = target.write_case(tmp_path / "case", seed)
        assert run_case(target.parse, path).kind == OK


@pytest.mark.timeout(240)
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
@FUZZ_SETTINGS
@given(data=st.data())
def test_mutated_files_end_in_success_or_error(target, seeds, tmp_path: Path, data) -> None:
    check_target(target, seeds[target.name], data, tmp_path)


def test_a_defect_is_classified(tmp_path: Path) -> None:
    """The harness itself: other exceptions, hangs and big allocations are defects."""

    def crash(_path: Path) -> None:
        raise IndexError("boom")

    def allocate(_path: Path) -> np.ndarray:
        return np.ones(MEMORY_LIMIT_BYTES // 4, dtype=np.float64)

    def hang(_path: Path) -> None:
        while True:
            pass

    def warn(_path: Path) -> None:
        np.float64(1.0) / np.float64(0.0)  # numpy's RuntimeWarning: printed ahead of any result

    assert run_case(crash, tmp_path).kind == "crash"
    assert run_case(allocate, tmp_path).kind == "memory"
    assert run_case(hang, tmp_path, timeout_s=0.2).kind == "hang"
    assert run_case(warn, tmp_path).kind == "warning"

    # The same inside a child, where read_nir reads: the harness must still see them.
    def allocate_in_child(path: Path) -> int:
        return call_in_child(lambda p: allocate(p).size, path, timeout_s=30)  # the array stays

    def warn_in_child(path: Path) -> None:
        call_in_child(warn, path, timeout_s=30)

    assert run_case(allocate_in_child, tmp_path).kind == "memory"
    assert run_case(warn_in_child, tmp_path).kind == "warning"

    def allocate_with_torch(_path: Path) -> int:  # torch's allocator: invisible to tracemalloc
        return int(torch.ones(MEMORY_LIMIT_BYTES // 4 + 2**20).sum())

    assert run_case(allocate_with_torch, tmp_path).kind == "memory"


# ------------------------------------------------------------------- holes fuzzing found


def peak_bytes_of(function, *args) -> int:
    """Most memory (traced) held while `function(*args)` runs; its MksgnError is expected."""
    tracemalloc.start()
    try:
        with pytest.raises(MksgnError):
            function(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        # BINPUT to memo slot 2**28: CPython's unpickler would fill a 4 GiB memo table.
        (b"\x80\x04N" + b"r" + struct.pack("<I", 2**28) + b".", "memo index"),
        # BINBYTES8 declaring 3 GiB: allocated before the (missing) bytes are read.
        (b"\x80\x04\x8e" + struct.pack("<Q", 3 * 2**30) + b"abc.", "declares"),
        # A frame longer than the file.
        (b"\x80\x04\x95" + struct.pack("<Q", 2**40) + b"N.", "frame"),
    ],
)
def test_pickle_sizes_are_checked_against_the_file(tmp_path: Path, payload, message) -> None:
    path = tmp_path / "labels.pkl"
    path.write_bytes(payload)
    assert peak_bytes_of(load_pickle, path) < 1 << 20
    with pytest.raises(MksgnError, match=message):
        load_pickle(path)


class Call:
    """Pickles as `function(*args)`."""

    def __init__(self, function: object, *args: object) -> None:
        self.function, self.args = function, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.function, self.args


@pytest.mark.parametrize(
    "content",
    [Call(bytes, 10**10), Call(bytearray, 10**10), Call(np.ndarray, (10**5, 10**5))],
    ids=["bytes", "bytearray", "ndarray"],
)
def test_allowed_types_cannot_allocate_a_size_from_the_file(tmp_path: Path, content) -> None:
    path = tmp_path / "labels.pkl"
    path.write_bytes(pickle.dumps({"labels": content}, protocol=2))
    assert peak_bytes_of(load_pickle, path) < 1 << 20


def test_pickled_bytes_and_arrays_still_load(tmp_path: Path) -> None:
    content = (b"", bytearray(b"ab"), np.arange(3.0), [b"x"])
    for protocol in (2, 3, 4, 5):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps(content, protocol=protocol))
        loaded = load_pickle(path)
        assert loaded[:2] == content[:2] and loaded[3] == content[3]
        np.testing.assert_array_equal(loaded[2], content[2])


def stgcn_folder(folder: Path, labels: list) -> Path:
    """An ST-GCN folder with two samples and the given labels."""
    folder.mkdir()
    np.save(folder / "train_data_joint.npy", np.zeros((2, 3, 4, 25, 1), np.float32))
    (folder / "train_label.pkl").write_bytes(pickle.dumps((["a", "b"], labels)))
    return folder


@pytest.mark.parametrize(
    ("labels", "message"),
    [([0, 10**30], "64-bit"), ([0, 10**12], "classes"), ([0, 2**62], "classes")],
)
def test_absurd_labels_are_errors_not_class_counts(tmp_path: Path, labels, message) -> None:
    from mksgn.train.data.inspect import inspect_dataset

    folder = stgcn_folder(tmp_path / "stgcn", labels)
    assert peak_bytes_of(inspect_dataset, folder) < 16 << 20
    with pytest.raises(MksgnError, match=message):
        inspect_dataset(folder)


def test_absurd_label_in_npz_and_pyskl(tmp_path: Path) -> None:
    from mksgn.train.data.formats import open_dataset

    x = np.zeros((2, 4, 150), np.float32)
    labels = np.array([0, 10**12])
    np.savez(tmp_path / "d.npz", x_train=x, y_train=labels, x_test=x, y_test=labels)
    with pytest.raises(MksgnError, match="classes"):
        open_dataset(tmp_path / "d.npz")
    content = pyskl_content(0)
    content["annotations"][0]["label"] = 10**12
    (tmp_path / "p.pkl").write_bytes(pickle.dumps(content))
    with pytest.raises(MksgnError, match="classes"):
        open_dataset(tmp_path / "p.pkl")


def test_input_array_with_a_huge_declared_shape_is_not_allocated(tmp_path: Path) -> None:
    from mksgn.targets.inputs import array_inputs

    graph = nir_graphs()[INPUT_GRAPH_INDEX]
    path = tmp_path / "x.npy"
    path.write_bytes(npy_with_header("<f4", (10**9, 3, 2, 6), False, b"\0" * 4096))
    assert peak_bytes_of(array_inputs, path, graph) < 1 << 20
    np.save(path, np.full((1, 3, 2, 6), 1e300))  # finite in float64, infinite in float32
    with pytest.raises(MksgnError, match="beyond float32"):
        array_inputs(path, graph)


def nir_file(tmp_path: Path, graph: nir.NIRGraph, change) -> Path:
    """Write `graph` and apply `change(h5 file)` to it."""
    import h5py

    path = tmp_path / "g.nir"
    nir.write(path, graph)
    with h5py.File(path, "r+") as handle:
        change(handle)
    return path


def replace(name: str, value: object):
    """A change that replaces one dataset."""

    def change(handle) -> None:
        del handle[name]
        handle[name] = value

    return change


@pytest.mark.parametrize(
    ("graph_index", "change", "message"),
    [
        (0, replace("node/nodes/fc/weight", np.full((3, 4), np.nan)), "finite"),
        (1, replace("node/nodes/conv/groups", np.array([1, 2, 3])), "groups"),
        (1, replace("node/nodes/conv/stride", -1), "stride -1 is outside"),
        (1, replace("node/nodes/conv/dilation", 0), "dilation 0 is outside"),
        (1, replace("node/nodes/conv/weight", np.ones((2, 2, 3, 1))), "3 non-empty axes"),
        (0, replace("node/nodes/fc/bias", np.ones(5)), "5 values for 3 outputs"),
        (0, replace("node/nodes/lif/tau", np.zeros(3)), "tau must be positive"),
        (0, replace("node/nodes/input/shape", np.array([10**12])), "whole numbers up to"),
        (2, replace("node/nodes/input/shape", np.array([1, 2**14, 2**14])), "elements"),
    ],
)
def test_nir_parameters_are_checked(tmp_path: Path, graph_index, change, message) -> None:
    from mksgn.convert.artifact import convert_nir

    path = nir_file(tmp_path, nir_graphs()[graph_index], change)
    with pytest.raises(MksgnError, match=message):
        convert_nir(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_broadcast_neuron_parameters_do_not_size_a_dense_basis(tmp_path: Path) -> None:
    """Input (1, 2048, 2048) -> SumPool -> LIF with one-value parameters: the converter used to
    build an identity of 2048**4 entries (2 PiB). The LIF now takes the shape it receives (NIR
    broadcasts one-value parameters), and the pool runs as a convolution, not a dense matrix."""
    from mksgn.convert.artifact import PLAN_FILE, convert_nir
    from mksgn.convert.lava_plan import load_plan

    size = 2048
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([1, size, size])),
            "pool": nir.SumPool2d(
                kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])
            ),
            "lif": lif((1,)),
            "output": nir.Output(output_type=np.array([1, size // 2, size // 2])),
        },
        edges=[("input", "pool"), ("pool", "lif"), ("lif", "output")],
        type_check=False,
    )
    nir.write(tmp_path / "g.nir", graph)
    tracemalloc.start()
    try:
        convert_nir(tmp_path / "g.nir", tmp_path / "out")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 30  # measured 204 MiB: a million neurons' parameters, no basis
    plan = load_plan(tmp_path / "out" / PLAN_FILE)
    assert plan.populations["lif"].nir_shape == (1, size // 2, size // 2)
    assert [s.kind for s in plan.synapses] == ["conv"]


def test_delay_of_a_billion_steps_is_refused(tmp_path: Path) -> None:
    from mksgn.convert.lava_graph import build_plan
    from mksgn.targets.reference import ReferenceTarget

    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([3])),
            "fc": nir.Affine(weight=np.eye(3), bias=np.zeros(3)),
            "delay": nir.Delay(delay=np.full(3, 1e5)),  # 10**9 steps of dt = 1e-4
            "lif": lif((3,)),
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[("input", "fc"), ("fc", "delay"), ("delay", "lif"), ("lif", "output")],
    )
    with pytest.raises(MksgnError, match="at most"):
        build_plan(graph)
    with pytest.raises(MksgnError, match="at most"):
        ReferenceTarget().run(graph, np.ones((1, 2, 3)))


# ------------------------------------------------------------------------------- via the CLI


def one_error_line(err: str) -> bool:
    """The CLI convention for an expected failure: one `Error:` line, not the catch-all."""
    lines = err.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("Error: ") and "--debug" not in lines[0]


@pytest.mark.timeout(240)
@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=st.data())
def test_cli_on_fuzzed_files_prints_one_error_line(seeds, tmp_path: Path, capsys, data) -> None:
    """`data inspect`, `convert`, `simulate --input` and `export` on mutated files: exit 0, or
    exit 1 with one `Error:` line that is not the catch-all for unforeseen exceptions."""
    kind = data.draw(st.sampled_from(["inspect", "convert", "input", "export"]), label="command")
    target = {"inspect": NPZ, "convert": NIR, "input": INPUT,
              "export": CHECKPOINT}[kind]  # fmt: skip
    seed_list = seeds[target.name]
    seed = seed_list[data.draw(st.integers(0, len(seed_list) - 1), label="seed")]
    path = target.write_case(tmp_path / "case", mutate(target, seed, data.draw(steps_for(target))))
    if kind == "inspect":
        args = ["data", "inspect", str(path)]
    elif kind == "convert":
        args = ["convert", str(path), "--out", str(tmp_path / "case" / "artifact")]
    elif kind == "export":
        args = ["export", str(path), "--nir", str(tmp_path / "case" / "student.nir")]
    else:
        graph = tmp_path / "case" / "g.nir"
        nir.write(graph, nir_graphs()[INPUT_GRAPH_INDEX])
        args = ["simulate", str(graph), "--input", str(path), "--backend", "snntorch"]
    capsys.readouterr()
    code = run(args)
    err = capsys.readouterr().err
    assert code in (0, 1)
    if code == 1:
        assert one_error_line(err), err


def test_nir_conv_with_stride_zero_prints_only_the_error(tmp_path: Path, capsys, recwarn) -> None:
    """NIR divides by the file's stride to get a conv's output shape: numpy's divide-by-zero
    warning used to print ahead of the Error line (found by the long fuzz run)."""
    import h5py

    path = tmp_path / "g.nir"
    nir.write(path, nir_graphs()[INPUT_GRAPH_INDEX])
    with h5py.File(path, "r+") as handle:
        conv = handle["node"]["nodes"]["conv"]
        stride = conv["stride"][()]
        del conv["stride"]
        conv["stride"] = np.zeros_like(stride)
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.ones((1, 8, 2, 6), dtype=np.float32))
    capsys.readouterr()
    assert run(["simulate", str(path), "--input", str(inputs), "--backend", "snntorch"]) == 1
    err = capsys.readouterr().err
    assert one_error_line(err), err
    assert [str(w.message) for w in recwarn] == []  # pytest catches what the CLI would print


def test_nir_file_that_hangs_libhdf5_is_an_error(seeds, tmp_path: Path, monkeypatch, capsys):
    """Seven flipped bytes (long fuzz run, NIR case 1,490) sent libhdf5 into a loop holding the
    GIL: `mksgn convert` never ended. The read now runs in a child stopped at its time limit."""
    from mksgn.convert import nir_io
    from mksgn.processes import alive, processes_where

    path = tmp_path / "flipped.nir"
    path.write_bytes(flip(seeds["nir"][1], 858043778))
    monkeypatch.setattr(nir_io, "NIR_READ_TIMEOUT_S", 2.0)
    children_before = alive(set(processes_where("ppid", os.getpid())))
    capsys.readouterr()
    started = time.monotonic()
    assert run(["convert", str(path), "--out", str(tmp_path / "artifact")]) == 1
    assert time.monotonic() - started < 20
    err = capsys.readouterr().err
    assert one_error_line(err) and "stopped after 2 s" in err, err
    assert not (tmp_path / "artifact").exists()
    assert not alive(set(processes_where("ppid", os.getpid())) - children_before)


def test_damaged_checkpoint_prints_no_torch_warning(seeds, tmp_path: Path) -> None:
    """A flipped pickle byte led torch.load through TypedStorage, whose deprecation warning then
    printed ahead of the Error line (checkpoint fuzzing, case 377 of seed 0)."""
    steps = [("pickle_flip", 1916236790), ("record", 1334611013), ("drop", 844285401)]
    data = mutate(CHECKPOINT, seeds["checkpoint"][1], steps)  # the GCN's
    path = CHECKPOINT.write_case(tmp_path / "case", data)
    assert run_case(CHECKPOINT.parse, path).kind in (OK, ERROR)


def test_npy_helpers_round_trip() -> None:
    """npy_with_header writes what split_npy reads back."""
    raw = npy_with_header("<f4", (2, 3), False, np.arange(6, dtype="<f4").tobytes())
    header, payload = split_npy(raw)
    assert header["shape"] == (2, 3) and len(payload) == 24
    np.testing.assert_array_equal(np.load(io.BytesIO(raw)), np.arange(6).reshape(2, 3))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("padding", np.array([1, 1]), "padding has 2 values; it takes 1 or 1"),  # a Conv1d
        ("groups", np.array([1, 1]), "groups has 2 values; it takes 1 or 1"),
        ("stride", np.zeros((2, 2, 2)), r"shaped \(2, 2, 2\)"),
    ],
)
def test_conv_geometry_counts_are_checked_in_one_line(tmp_path: Path, field, value, message):
    """Found by the long fuzz run: two paddings or two groups on a Conv1d reached numpy's
    broadcast error or int() of an array; an array value printed over many lines."""
    from mksgn.convert.nir_validation import validate_graph

    graph = nir_graphs()[INPUT_GRAPH_INDEX]
    setattr(graph.nodes["conv"], field, value)
    with pytest.raises(MksgnError, match=message) as raised:
        validate_graph(graph, where="g.nir")
    assert "\n" not in str(raised.value)


def test_a_one_value_neuron_takes_the_shape_it_receives(tmp_path: Path) -> None:
    """Found by the long fuzz run: a CubaLIF with one broadcast value per parameter made the
    converter's shape of the pool after it (1,), and its conv shape arithmetic an IndexError. The
    converter now takes every node's shape from the graph's validation, as the reference does:
    the CubaLIF is as large as the conv feeding it, and the lowered graph spikes like the
    reference."""
    from mksgn.convert.artifact import PLAN_FILE, convert_nir
    from mksgn.convert.lava_plan import load_plan
    from mksgn.convert.nir_io import read_nir
    from mksgn.convert.nir_validation import input_shape, validate_graph
    from mksgn.targets.emulator import EmulatorTarget
    from mksgn.targets.reference import ReferenceTarget

    graph = nir_graphs()[2]  # input -> conv -> cuba -> pool -> lif -> output
    cuba = graph.nodes["cuba"]
    for field in ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"):
        setattr(cuba, field, np.asarray(getattr(cuba, field)).ravel()[:1])
    nir.write(tmp_path / "g.nir", graph)
    convert_nir(tmp_path / "g.nir", tmp_path / "out")
    graph = read_nir(tmp_path / "g.nir")
    cuba_shape = load_plan(tmp_path / "out" / PLAN_FILE).populations["cuba"].nir_shape
    assert cuba_shape == validate_graph(graph)["conv"] != (1,)
    inputs = np.random.default_rng(3).uniform(0, 1.5, (2, 6, *input_shape(graph)))
    record = ("cuba", "lif")
    emulated = EmulatorTarget(fixed_point=False).run(graph, inputs, record).recorded
    expected = ReferenceTarget(dtype=torch.float64).run(graph, inputs, record).recorded
    for node in record:
        np.testing.assert_array_equal(emulated[node], expected[node])
