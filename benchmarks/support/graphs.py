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


def dense_lif_graph(weight: np.ndarray) -> nir.NIRGraph:
    """Input -> Affine(weight, no bias) -> LIF (snnTorch defaults) -> Output."""
    outputs, inputs = weight.shape
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([inputs])),
            "fc": nir.Affine(weight=np.asarray(weight, dtype=np.float64), bias=np.zeros(outputs)),
            "lif": lif((outputs,)),
            "output": nir.Output(output_type=np.array([outputs])),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
    )
