"""The restricted unpickler: data loads, code does not run."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mksgn.errors import MksgnError
from mksgn.train.data.safe_pickle import load_pickle

MKSGN = Path(sys.executable).with_name("mksgn")


class CallsOnLoad:
    """Pickles as a call of `function(*args)`: what a malicious pickle does."""

    def __init__(self, function: object, *args: object) -> None:
        self.function = function
        self.args = args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.function, self.args


def write(path: Path, payload: bytes) -> Path:
    """Write bytes and return the path."""
    path.write_bytes(payload)
    return path


def test_os_system_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"labels": [CallsOnLoad(os.system, f"touch {marker}")]})
    # The payload is real: the standard unpickler runs the command.
    pickle.loads(payload)
    assert marker.exists()
    marker.unlink()

    path = write(tmp_path / "label.pkl", payload)
    with pytest.raises(MksgnError) as refused:
        load_pickle(path)
    assert str(path) in str(refused.value)
    assert f"'{os.system.__module__}.system'" in str(refused.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("make_payload", "global_name"),
    [
        (lambda m: CallsOnLoad(eval, f"open({str(m)!r}, 'w').close()"), "builtins.eval"),
        (lambda m: CallsOnLoad(exec, f"open({str(m)!r}, 'w').close()"), "builtins.exec"),
        (lambda m: CallsOnLoad(subprocess.check_call, ["touch", str(m)]), "subprocess.check_call"),
        (lambda m: CallsOnLoad(getattr, 1, "real"), "builtins.getattr"),
    ],
)
def test_callables_are_refused_by_name(tmp_path: Path, make_payload, global_name: str) -> None:
    marker = tmp_path / "pwned"
    for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):
        path = write(tmp_path / "data.pkl", pickle.dumps([1, make_payload(marker)], protocol))
        with pytest.raises(MksgnError, match=re.escape(f"'{global_name}'")):
            load_pickle(path)
        assert not marker.exists()


def test_file_removal_is_refused(tmp_path: Path) -> None:
    keep = tmp_path / "precious.txt"
    keep.write_text("data")
    path = write(tmp_path / "data.pkl", pickle.dumps(CallsOnLoad(os.remove, str(keep))))
    with pytest.raises(MksgnError, match=rf"'{os.remove.__module__}\.remove'"):
        load_pickle(path)
    assert keep.read_text() == "data"


def test_python2_style_builtin_eval_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"c__builtin__\neval\n(S'open({str(marker)!r}, \"w\").close()'\ntR.".encode()
    path = write(tmp_path / "old.pkl", payload)
    with pytest.raises(MksgnError, match=r"'builtins\.eval'"):
        load_pickle(path)
    assert not marker.exists()


def test_only_plain_ndarray_is_rebuilt(tmp_path: Path) -> None:
    path = write(tmp_path / "masked.pkl", pickle.dumps(np.ma.masked_array([1.0, 2.0], [0, 1])))
    with pytest.raises(MksgnError, match=r"refused to load 'numpy\.ma\.core\._mareconstruct'"):
        load_pickle(path)


DTYPES = ["float16", "float32", "float64", ">f4", "int8", "int64", "uint16", "bool", "complex64"]


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_numpy_arrays_of_many_dtypes_round_trip(tmp_path: Path, protocol: int) -> None:
    rng = np.random.default_rng(protocol)
    arrays = {dtype: (rng.normal(size=(2, 3, 4)) * 50).astype(dtype) for dtype in DTYPES}
    arrays["unicode"] = np.array(["S001C001P001R001A001", "café"])
    arrays["structured"] = np.array([(1.5, 2), (3.0, -4)], dtype=[("x", "f4"), ("n", "i2")])
    arrays["fortran"] = np.asfortranarray(rng.normal(size=(3, 5)))
    aligned = np.dtype([("x", "f4"), ("n", "i2")], align=True)
    arrays["aligned structured"] = np.array([(1.5, 2), (3.0, -4)], dtype=aligned)
    arrays["subarray"] = np.array([([1.5, 2, 3],), ([4, 5, 6],)], dtype=[("xyz", "f4", (3,))])
    content = {
        "arrays": arrays,
        "scalars": (np.float32(1.25), np.int64(-7), np.bool_(True)),
        "plain": [{1, 2}, frozenset({3}), b"\x00\xff", bytearray(b"ab"), 1 + 2j, None, True],
    }
    path = write(tmp_path / "data.pkl", pickle.dumps(content, protocol))
    loaded = load_pickle(path)
    for key, array in arrays.items():
        np.testing.assert_array_equal(loaded["arrays"][key], array)
        assert loaded["arrays"][key].dtype.newbyteorder("=") == array.dtype.newbyteorder("=")
    assert loaded["scalars"] == content["scalars"]
    assert type(loaded["scalars"][1]) is np.int64
    assert loaded["plain"] == content["plain"]


def test_numpy2_module_spelling_loads(tmp_path: Path) -> None:
    # numpy 2 writes numpy._core.*; protocol 2 names globals on text lines, so rewrite those.
    original = pickle.dumps([np.arange(5, dtype=np.float32), np.float64(2.5)], protocol=2)
    renamed = original.replace(b"cnumpy.core.", b"cnumpy._core.")
    assert renamed.count(b"numpy._core.") == 2
    loaded = load_pickle(write(tmp_path / "np2.pkl", renamed))
    np.testing.assert_array_equal(loaded[0], np.arange(5, dtype=np.float32))
    assert loaded[1] == 2.5


def test_python2_latin1_pickle_falls_back(tmp_path: Path) -> None:
    payload = b"((lp0\nS'S001C001P001R001A001'\np1\naS'caf\\xe9'\np2\na(lp3\nI0\naI5\natp4\n."
    assert load_pickle(write(tmp_path / "py2.pkl", payload)) == (
        ["S001C001P001R001A001", "café"],
        [0, 5],
    )


def test_truncated_and_empty_pickles_error_with_the_file(tmp_path: Path) -> None:
    payload = pickle.dumps({"a": np.arange(1000.0), "b": list(range(100))}, protocol=4)
    for name, content in (("cut.pkl", payload[: len(payload) // 2]), ("empty.pkl", b"")):
        path = write(tmp_path / name, content)
        with pytest.raises(MksgnError, match=rf"{name}: not a readable pickle \(truncated"):
            load_pickle(path)


def test_huge_initial_array_shape_is_refused(tmp_path: Path) -> None:
    payload = pickle.dumps(np.zeros(3), protocol=2).replace(b"K\x00\x85", b"J\x00\x00\x00\x40\x85")
    with pytest.raises(MksgnError, match="initial array shape"):
        load_pickle(write(tmp_path / "big.pkl", payload))


class ForgedDtype:
    """Pickles as float16 with an item size of 20,046 in its state (what the fuzzer found)."""

    def __reduce__(self) -> tuple[object, ...]:
        return np.dtype, ("f2", False, True), (3, "<", 20046, -1, -1, 0)


class ForgedArray:
    """Pickles as numpy does an array, with the forged dtype in its state."""

    def __reduce__(self) -> tuple[object, ...]:
        state = (1, (1, 4, 25, 3), ForgedDtype(), False, bytes(600))
        return np.core.multiarray._reconstruct, (np.ndarray, (0,), b"b"), state


@pytest.mark.parametrize("forged", [ForgedArray(), ForgedDtype()], ids=["array", "dtype"])
def test_forged_dtype_states_are_refused_without_a_crash(tmp_path: Path, forged: object) -> None:
    """numpy trusts a pickled dtype state: plain pickle.load of the array case segfaults. In a
    subprocess, so that a regression cannot take pytest down with it."""
    path = write(tmp_path / "forged.pkl", pickle.dumps({"keypoint": forged}, protocol=4))
    completed = subprocess.run(
        [str(MKSGN), "data", "inspect", str(path)], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 1, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {path}: ") and "dtype" in lines[0]


class SharedFloat32Swapped:
    """Pickles as numpy.dtype('f4', copy=False) -- numpy's own shared float32 -- and a state
    that swaps its byte order."""

    def __reduce__(self) -> tuple[object, ...]:
        return np.dtype, ("f4", False, False), (3, ">", None, None, None, -1, -1, 0)


def test_a_pickle_cannot_change_numpys_shared_dtypes(tmp_path: Path) -> None:
    path = write(tmp_path / "swap.pkl", pickle.dumps(SharedFloat32Swapped(), protocol=4))
    assert load_pickle(path) == np.dtype(">f4")
    assert np.dtype("f4").byteorder == "="  # the loaded one was a copy
