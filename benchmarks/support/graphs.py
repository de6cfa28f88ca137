"""NIR nodes that tests and benchmarks build their small graphs from."""

from __future__ import annotations

import nir
import numpy as np

from mksgn.convert.nir_nodes import DEFAULT_DT


def lif(
    shape: tuple[int, ...],
    tau: float = 2e-4,
    r: float | None = None,
    vth: float = 1.0,
    leak: float = 0.0,
) -> nir.LIF:
    """A LIF population with array parameters; r None is snnTorch's convention, r = tau / dt
    (the defaults are snnTorch's Leaky with beta 0.5 and threshold 1)."""
    r = tau / DEFAULT_DT if r is None else r
    return nir.LIF(
        tau=np.full(shape, tau),
        r=np.full(shape, float(r)),
        v_leak=np.full(shape, leak),
        v_threshold=np.full(shape, vth),
        v_reset=np.zeros(shape),
    )
