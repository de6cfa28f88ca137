"""Load data pickles from untrusted sources without running their code.

A pickle can name any importable callable and have it called while loading (os.system, eval, ...).
The unpickler here resolves only an allow-list of globals: plain builtins containers and scalars,
and the few numpy functions that rebuild arrays, dtypes and scalars (in both the numpy 1 `numpy.core`
and numpy 2 `numpy._core` spellings). Everything else stops the load before anything is called.

Memory is bounded by the file too: CPython's unpickler allocates what an opcode declares before
reading it (a 10-byte pickle with memo index 2**28 makes it fill a 4 GiB table), so the opcodes are
scanned first (`check_stream`), and `bytes(n)`, `bytearray(n)` and `numpy.ndarray(shape)` cannot be
called with a size.
"""

from __future__ import annotations

import _compat_pickle
import builtins
import codecs
import collections
import math
import mmap
import os
import pickle
import pickletools
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from mksgn.errors import MksgnError

# numpy writes _reconstruct(ndarray, (0,), b"b") and then fills the array from the pickled bytes,
# whose length numpy checks; a larger initial shape could only serve to allocate memory.
MAX_RECONSTRUCT_ELEMENTS = 1 << 16
# The pickler numbers memo entries 0, 1, 2, ...; allow gaps (optimised pickles) but not a jump.
MEMO_SLACK = 1 << 16
_MEMO_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})

_SAFE_BUILTINS = (
    "bool",
    "int",
    "float",
    "complex",
    "str",
    "tuple",
    "list",
    "dict",
    "set",
    "frozenset",
)


def _multiarray() -> Any:
    """numpy's multiarray module under whichever name this numpy uses."""
    core = getattr(np, "_core", None)
    return (
        core.multiarray if core is not None and hasattr(core, "multiarray") else np.core.multiarray
    )


class _ArrayType:
    """What `numpy.ndarray` resolves to: `_reconstruct` accepts it, calling it is refused
    (ndarray(shape) would allocate a size taken from the file)."""

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise pickle.UnpicklingError("refused to call numpy.ndarray")


_ARRAY_TYPE = _ArrayType()


def _bytes_like(kind: type) -> Callable[..., Any]:
    """bytes()/bytearray() from data only: an integer argument would allocate that many bytes."""

    def build(*args: object) -> object:
        if any(isinstance(arg, int) for arg in args):
            raise pickle.UnpicklingError(f"refused {kind.__name__}() of an integer size")
        return kind(*args)

    return build


def _reconstruct(subtype: object, shape: object, dtype: object) -> np.ndarray:
    """numpy's `_reconstruct` for plain ndarrays with a small initial shape only."""
    if subtype is _ARRAY_TYPE:
        subtype = np.ndarray
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"refused to rebuild an array of type {subtype!r}")
    dims = shape if isinstance(shape, tuple) else (shape,)
    if not all(isinstance(d, int) and d >= 0 for d in dims) or math.prod(dims) > (
        MAX_RECONSTRUCT_ELEMENTS
    ):
        raise pickle.UnpicklingError(f"refused an initial array shape {shape!r}")
    return _multiarray()._reconstruct(subtype, shape, dtype)


def _frombuffer(buffer: object, dtype: object, shape: object, order: object) -> np.ndarray:
    """numpy's protocol-5 array rebuild: a view of bytes already read from the file, reshaped."""
    if not isinstance(buffer, (bytes, bytearray, memoryview, pickle.PickleBuffer)):
        raise pickle.UnpicklingError(f"refused an array buffer of type {type(buffer).__name__}")
    return np.frombuffer(buffer, dtype=np.dtype(dtype)).reshape(shape, order=order)


def _latin1_encode(text: object, encoding: object = "utf-8") -> bytes:
    """`_codecs.encode` as protocol-2 pickles use it for bytes: str -> bytes via latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _refuse_wrong_array_state(state: object) -> None:
    """numpy's ndarray state (version, shape, dtype, fortran, data): a plain-data dtype and
    exactly the bytes the shape needs, so numpy has nothing inconsistent to trust."""
    if not (isinstance(state, tuple) and len(state) == 5):
        raise pickle.UnpicklingError("refused an array state that is not numpy's 5-tuple")
    _, shape, dtype, fortran, data = state
    if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise pickle.UnpicklingError(f"refused an array shape {shape!r}")
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError(f"refused an array of dtype {dtype!r}")
    if not isinstance(fortran, bool) or not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("refused an array state with wrong field types")
    if len(data) != math.prod(shape) * dtype.itemsize:
        raise pickle.UnpicklingError(
            f"refused an array of shape {shape} and {dtype} with {len(data)} bytes of data"
        )


def _fresh_dtype(spec: object, align: object = False, copy: object = False) -> np.dtype:
    """`numpy.dtype` for pickles: always a copy, so that a BUILD never touches numpy's shared
    float32/int64/... instances."""
    return np.dtype(spec, bool(align), True)


def _dtype_from_state(target: np.dtype, state: object) -> np.dtype:
    """The dtype that a pickled dtype state describes, built with numpy's public constructors
    (which check what they are given): byte order, subarray, or structured fields."""
    if not (isinstance(state, tuple) and len(state) == 8):
        raise pickle.UnpicklingError(f"refused a dtype state {state!r:.80}")
    _, byteorder, subarray, names, fields, size, _, flags = state
    if names is not None:
        if not (
            isinstance(names, tuple) and isinstance(fields, dict) and set(names) == set(fields)
        ):
            raise pickle.UnpicklingError("refused a structured dtype whose names and fields differ")
        spec = {
            "names": list(names),
            "formats": [fields[name][0] for name in names],
            "offsets": [fields[name][1] for name in names],
            "itemsize": size,
        }
        return np.dtype(spec, align=bool(int(flags) & 0x80))  # NPY_ALIGNED_STRUCT
    if subarray is not None:
        return np.dtype(subarray)
    return target.newbyteorder(byteorder) if byteorder in ("<", ">") else target


def _checked_build(unpickler: pickle._Unpickler) -> None:
    """The BUILD opcode (set an object's state) for arrays and dtypes only, checked first.
    numpy trusts a dtype's pickled state: an item size of 20046 for float16 (found by the fuzzer)
    crashed the interpreter with a segfault when the array was built."""
    state = unpickler.stack.pop()
    target = unpickler.stack[-1]
    if isinstance(target, np.dtype):
        honest = _dtype_from_state(target, state)
        # Only a state that numpy's own constructor produces, for a dtype of the target's kind
        # and size, is applied (the target is a copy: see _fresh_dtype).
        if not (
            honest.__reduce__()[2] == state
            and (honest.kind, honest.itemsize) == (target.kind, target.itemsize)
        ):
            raise pickle.UnpicklingError(f"refused a state for dtype {target} that is not its own")
        target.__setstate__(state)
        return
    if type(target) is np.ndarray:
        _refuse_wrong_array_state(state)
        target.__setstate__(state)
        return
    raise pickle.UnpicklingError(f"refused to set the state of a {type(target).__name__}")


def _allowed_globals() -> dict[tuple[str, str], Callable[..., Any]]:
    """The (module, name) pairs a data pickle may reference, mapped to what they resolve to."""
    allowed: dict[tuple[str, str], Callable[..., Any]] = {
        ("builtins", name): getattr(builtins, name) for name in _SAFE_BUILTINS
    }
    allowed[("builtins", "bytes")] = _bytes_like(bytes)
    allowed[("builtins", "bytearray")] = _bytes_like(bytearray)
    allowed[("collections", "OrderedDict")] = collections.OrderedDict
    allowed[("_codecs", "encode")] = _latin1_encode
    allowed[("numpy", "ndarray")] = _ARRAY_TYPE
    allowed[("numpy", "dtype")] = _fresh_dtype
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = _reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = _multiarray().scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = _frombuffer
    return allowed


_ALLOWED = _allowed_globals()


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle referenced a global outside the allow-list."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.qualified_name = f"{module}.{name}"


class RestrictedUnpickler(pickle._Unpickler):
    """An Unpickler whose find_class resolves only the data allow-list and whose BUILD opcode
    sets the state of arrays and dtypes only, after checking it. The pure-Python unpickler,
    because the C one cannot intercept BUILD; data pickles have few opcodes per array, so the
    cost is small."""

    dispatch: ClassVar[dict] = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = _checked_build

    def find_class(self, module: str, name: str) -> Any:
        """Resolve an allowed global or refuse it (nothing is imported or called)."""
        # Protocol 0-2 pickles use Python 2 names (__builtin__.eval); compare Python 3 names.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise RefusedGlobal(module, name)

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids: data pickles never need them."""
        raise pickle.UnpicklingError(f"refused persistent id {pid!r}")


# Opcode byte -> (name, argument width): >= 0 fixed bytes, or one of pickletools' markers for
# "up to a newline" and "length prefix of 1/4/8 bytes, then that many bytes".
_OPCODES: dict[int, tuple[str, int]] = {
    ord(op.code.encode("latin-1")): (op.name, op.arg.n if op.arg is not None else 0)
    for op in pickletools.opcodes
}
_PREFIX_WIDTH = {
    pickletools.TAKEN_FROM_ARGUMENT1: (1, False),
    pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
    pickletools.TAKEN_FROM_ARGUMENT4U: (4, False),
    pickletools.TAKEN_FROM_ARGUMENT8U: (8, False),
}


def check_stream(path: str | os.PathLike[str]) -> None:
    """Walk the opcodes without building anything: every declared length must fit in the rest
    of the file and memo indices must stay close to the number of entries stored so far."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            raise pickle.UnpicklingError("the file is empty")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
            _walk_opcodes(view, size)


def _walk_opcodes(view: mmap.mmap, size: int) -> None:
    """The scan of `check_stream` over the mapped file."""
    position, stored = 0, 0
    while position < size:
        start = position
        name, width = _OPCODES.get(view[position], ("", 0))
        if not name:
            raise pickle.UnpicklingError(f"unknown opcode {view[position]:#04x} at byte {start}")
        if name == "STOP":
            return
        position += 1
        value: int | bytes | None = None
        if width >= 0:
            if name in ("BINPUT", "LONG_BINPUT", "FRAME"):
                value = int.from_bytes(view[position : position + width], "little")
            position += width
        elif width == pickletools.UP_TO_NEWLINE:
            end = view.find(b"\n", position)
            if name in ("GLOBAL", "INST") and end >= 0:  # module and name: two lines
                end = view.find(b"\n", end + 1)
            if end < 0:
                break
            if name == "PUT":
                value = view[position:end]
            position = end + 1
        else:
            prefix, signed = _PREFIX_WIDTH[width]
            length = int.from_bytes(view[position : position + prefix], "little", signed=signed)
            position += prefix
            if length < 0 or length > size - position:
                raise pickle.UnpicklingError(
                    f"{name} at byte {start} declares {length} bytes; {size - position} remain"
                )
            position += length
        if name == "FRAME" and isinstance(value, int) and value > size - position:
            raise pickle.UnpicklingError(
                f"a frame at byte {start} declares {value} bytes; {size - position} remain"
            )
        if name in _MEMO_OPS:
            try:
                index = value if isinstance(value, int) else int(bytes(value or b""))
            except ValueError:
                raise pickle.UnpicklingError(f"bad memo index at byte {start}") from None
            if index > 2 * stored + MEMO_SLACK:
                raise pickle.UnpicklingError(
                    f"memo index {index} at byte {start} is far beyond the {stored} entries "
                    "stored so far"
                )
            stored += 1
        elif name == "MEMOIZE":
            stored += 1
    raise pickle.UnpicklingError("pickle data was truncated")


def _load_with(path: str | os.PathLike[str], encoding: str) -> object:
    """Unpickle `path` with the restricted unpickler and the given Python-2 str encoding."""
    with open(path, "rb") as handle:
        return RestrictedUnpickler(handle, encoding=encoding).load()


def load_pickle(path: str | os.PathLike[str]) -> object:
    """Load a data pickle that may come from a stranger: only builtins containers and numpy arrays."""
    try:
        check_stream(path)
        try:
            return _load_with(path, "ASCII")
        except UnicodeDecodeError:
            # Python-2 pickles (ST-GCN's label .pkl) store byte strings; latin-1 maps them 1:1.
            return _load_with(path, "latin1")
    except RefusedGlobal as refused:
        raise MksgnError(
            f"{path}: refused to load '{refused.qualified_name}' from this pickle: a data pickle may "
            "only hold Python containers, numbers, strings and numpy arrays. The file may be "
            "malicious; obtain the data from a source you trust."
        ) from None
    except OSError as error:
        raise MksgnError(f"{path}: cannot read the file: {error.strerror or error}") from None
    except MemoryError:
        raise MksgnError(f"{path}: not enough memory to load this pickle") from None
    except Exception as error:  # any failure to decode the file is a property of the file
        raise MksgnError(
            f"{path}: not a readable pickle (truncated or corrupt: {type(error).__name__}: "
            f"{error}); download or write it again"
        ) from None
