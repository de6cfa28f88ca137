"""Memory a Lava or emulator run will need, checked against what the machine has before the run
starts: an oversized --batch-size is refused in seconds instead of being SIGKILLed by the kernel
after minutes (issue 16)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from collections.abc import Iterator

import numpy as np

from mksgn.convert.lava_plan import LavaPlan
from mksgn.errors import MksgnError

# Building a Lava network holds every synapse entry about twice as a scipy csr (float64 value +
# int32 index): measured 1.15 GiB more per sample side by side for the quick demo's MK-SGN (53 M
# entries; 1.6 GiB at 1 sample, 9.7 GiB at 8, lava-float). lava-fixed holds more: a tiny 6-class
# MK-SGN at 8 samples side by side grew past 21 GB, so fixed point is priced 2.5 times float.
LAVA_BYTES_PER_SYNAPSE_ENTRY = 24
LAVA_FIXED_FACTOR = 2.5
# The emulator keeps every synapse's weights once as float64 (conv kernels not expanded) and, per
# neuron and sample, its state (u, v) and, per simulator step, its summed input, its spikes and
# the recorded value: at most 3 float64 values.
EMULATOR_BYTES_PER_WEIGHT = 8
EMULATOR_BYTES_PER_NEURON_SAMPLE = 8 * 2
EMULATOR_BYTES_PER_NEURON_STEP = 8 * 3


def synapse_entries(plan: LavaPlan) -> int:
    """Weights one sample's copy of a Lava network stores: Sparse nonzeros, dense/Conv weights."""
    return sum(syn.nonzeros if syn.sparse else syn.weight.size for syn in plan.synapses)


def lava_bytes(plan: LavaPlan, batch: int, fixed_point: bool) -> tuple[int, int]:
    """(bytes independent of the batch, bytes per sample side by side) of a Lava run."""
    per_sample = max(1, synapse_entries(plan)) * LAVA_BYTES_PER_SYNAPSE_ENTRY
    return 0, int(per_sample * (LAVA_FIXED_FACTOR if fixed_point else 1.0))


def emulator_bytes(plan: LavaPlan, period: int) -> tuple[int, int]:
    """(bytes independent of the batch, bytes per sample in a batch) of an emulator run whose
    widest block runs `period` simulator steps."""
    weights = sum(syn.weight.size for syn in plan.synapses)
    neurons = sum(int(np.prod(pop.lava_shape)) for pop in plan.populations.values())
    per_neuron = EMULATOR_BYTES_PER_NEURON_SAMPLE + EMULATOR_BYTES_PER_NEURON_STEP * period
    return EMULATOR_BYTES_PER_WEIGHT * weights, per_neuron * neurons


def available_bytes() -> int | None:
    """MemAvailable of this machine (None where /proc/meminfo does not say)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_fits(backend: str, fixed: int, per_sample: int, batch: int) -> None:
    """MksgnError, with the estimate and the largest batch that fits, when `batch` samples side
    by side would need more memory than the machine has available."""
    available = available_bytes()
    needed = fixed + per_sample * batch
    if available is None or needed <= available:
        return
    largest = (available - fixed) // per_sample if per_sample else 0
    gib = 2**30
    advice = (
        f"the largest --batch-size that fits is {largest}"
        if largest >= 1
        else "not even one sample fits: free memory or use a machine with more"
    )
    raise MksgnError(
        f"{backend} with --batch-size {batch} would need about {needed / gib:.1f} GiB, but "
        f"{available / gib:.1f} GiB are available; {advice}"
    )


# glibc's mallopt parameters (malloc.h) and their defaults.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
DEFAULT_TRIM_THRESHOLD = 128 * 1024
DEFAULT_MMAP_MAX = 65536


@contextlib.contextmanager
def freed_memory_reused() -> Iterator[None]:
    """While inside, glibc serves large arrays from its heap and keeps freed pages there, so the
    emulator's per-batch arrays reuse memory instead of being mapped, zero-filled by the kernel
    and unmapped on every batch (1.4x faster on the paper MK-SGN). On leaving, the defaults
    return and the kept pages go back to the system. Where the C library is not glibc, nothing
    changes."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        yield
        return
    mallopt(M_MMAP_MAX, 0)
    mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
    try:
        yield
    finally:
        mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        malloc_trim(0)
