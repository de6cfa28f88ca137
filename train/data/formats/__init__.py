"""Skeleton datasets in the formats users already have, one module per format (as PYSKL keeps
one dataset per file): CTR-GCN npz (ctrgcn.py), ST-GCN npy + pkl (stgcn.py), PYSKL pickle
(pyskl.py); the arrays type and the npz writer (arrays.py), what readers share (base.py) and
detection (detect.py). Import from here."""

from mksgn.train.data.formats.arrays import (
    COORDS,
    MAX_BODIES,
    CtrgcnSpool,
    SkeletonArrays,
    to_ctrgcn_layout,
    write_ctrgcn_npz,
)
from mksgn.train.data.formats.base import FORMAT_DESCRIPTIONS, DatasetFile, map_npy
from mksgn.train.data.formats.ctrgcn import CtrgcnNpz
from mksgn.train.data.formats.detect import (
    class_names,
    detect_format,
    load_split,
    num_classes,
    open_dataset,
)
from mksgn.train.data.formats.pyskl import PysklPickle
from mksgn.train.data.formats.stgcn import StgcnNpy

__all__ = [
    "COORDS",
    "FORMAT_DESCRIPTIONS",
    "MAX_BODIES",
    "CtrgcnNpz",
    "CtrgcnSpool",
    "DatasetFile",
    "PysklPickle",
    "SkeletonArrays",
    "StgcnNpy",
    "class_names",
    "detect_format",
    "load_split",
    "map_npy",
    "num_classes",
    "open_dataset",
    "to_ctrgcn_layout",
    "write_ctrgcn_npz",
]
