"""Load data pickles from untrusted sources without running their code.

A pickle can name any importable callable and have it called while loading (os.system, eval, ...).
The unpickler here resolves only an allow-list of globals: plain builtins containers and scalars,
and the few numpy functions that rebuild arrays, dtypes and scalars (in both the numpy 1 `numpy.core`
and numpy 2 `numpy._core` spellings). Everything else stops the load before anything is called.
"""

from __future__ import annotations

import _compat_pickle
import builtins
import codecs
import collections
import math
import os
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

from mksgn.errors import MksgnError

# numpy writes _reconstruct(ndarray, (0,), b"b") and then fills the array from the pickled bytes,
# whose length numpy checks; a larger initial shape could only serve to allocate memory.
MAX_RECONSTRUCT_ELEMENTS = 1 << 16

_SAFE_BUILTINS = (
    "bool",
    "int",
    "float",
    "complex",
    "str",
    "bytes",
    "bytearray",
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


def _reconstruct(subtype: object, shape: object, dtype: object) -> np.ndarray:
    """numpy's `_reconstruct` for plain ndarrays with a small initial shape only."""
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


def _allowed_globals() -> dict[tuple[str, str], Callable[..., Any]]:
    """The (module, name) pairs a data pickle may reference, mapped to what they resolve to."""
    allowed: dict[tuple[str, str], Callable[..., Any]] = {
        ("builtins", name): getattr(builtins, name) for name in _SAFE_BUILTINS
    }
    allowed[("collections", "OrderedDict")] = collections.OrderedDict
    allowed[("_codecs", "encode")] = _latin1_encode
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
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


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose find_class resolves only the data allow-list."""

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


def _load_with(path: str | os.PathLike[str], encoding: str) -> object:
    """Unpickle `path` with the restricted unpickler and the given Python-2 str encoding."""
    with open(path, "rb") as handle:
        return RestrictedUnpickler(handle, encoding=encoding).load()


def load_pickle(path: str | os.PathLike[str]) -> object:
    """Load a data pickle that may come from a stranger: only builtins containers and numpy arrays."""
    try:
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
