"""The NIR vocabulary mksgn runs: which node types exist for it (neurons, spiking neurons, linear
nodes), each type's parameter fields, the size limits every backend relies on, and the time step
NIR graphs leave unsaid (DEFAULT_DT)."""

from __future__ import annotations

import nir

# NIR graphs carry no time step: snnTorch's exporter assumes dt = 1e-4 s (tau = dt/(1-β)), and
# every mksgn exporter, converter and target takes it as the default (a graph's metadata "dt"
# overrides it where a target reads metadata).
DEFAULT_DT = 1e-4
# The node vocabulary every converter and target shares.
NEURON_TYPES: tuple[type, ...] = (nir.LIF, nir.IF, nir.LI, nir.I, nir.CubaLIF, nir.CubaLI)
SPIKING_TYPES: tuple[type, ...] = (nir.LIF, nir.IF, nir.CubaLIF)
BINARY_TYPES: tuple[type, ...] = (*SPIKING_TYPES, nir.Threshold)  # nodes that output 0 or 1
LINEAR_TYPES: tuple[type, ...] = (
    nir.Affine,
    nir.Linear,
    nir.Scale,
    nir.Conv1d,
    nir.Conv2d,
    nir.SumPool2d,
    nir.AvgPool2d,
    nir.Flatten,
    nir.Delay,
)
SUPPORTED_NODES: tuple[type, ...] = (
    nir.Input,
    nir.Output,
    *LINEAR_TYPES,
    nir.Threshold,
    *NEURON_TYPES,
    nir.NIRGraph,
)
SUPPORTED_NAMES = ", ".join(kind.__name__ for kind in SUPPORTED_NODES)

Shape = tuple[int, ...]

# Every backend allocates state per element of a node's output; a declared shape beyond this (the
# largest mksgn layer has about 10**5 neurons) is refused before anything is sized by it.
MAX_NODE_ELEMENTS = 1 << 26
# Every delay step is a Lava process per synapse and a stored activation in the reference.
MAX_DELAY_STEPS = 4096
# Stride, padding, dilation, groups, kernel size and flatten axes: small integers in any real graph.
MAX_GEOMETRY = 1 << 16

FLOAT_FIELDS: dict[type, tuple[str, ...]] = {
    nir.Affine: ("weight", "bias"),
    nir.Linear: ("weight",),
    nir.Conv1d: ("weight", "bias"),
    nir.Conv2d: ("weight", "bias"),
}
INTEGER_FIELDS: dict[type, tuple[str, ...]] = {
    nir.Conv1d: ("stride", "padding", "dilation", "groups"),
    nir.Conv2d: ("stride", "padding", "dilation", "groups"),
    nir.SumPool2d: ("kernel_size", "stride", "padding"),
    nir.AvgPool2d: ("kernel_size", "stride", "padding"),
    nir.Flatten: ("start_dim", "end_dim"),
}
WEIGHT_RANK: dict[type, int] = {nir.Affine: 2, nir.Linear: 2, nir.Conv1d: 3, nir.Conv2d: 4}

POSITIVE_FIELDS = ("tau", "tau_syn", "tau_mem", "stride", "dilation", "groups", "kernel_size")

NEURON_FIELDS: dict[type, tuple[str, ...]] = {
    nir.I: ("r",),
    nir.IF: ("r", "v_threshold", "v_reset"),
    nir.LI: ("tau", "r", "v_leak"),
    nir.LIF: ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    nir.CubaLI: ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
    nir.CubaLIF: ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    nir.Delay: ("delay",),
    nir.Threshold: ("threshold",),
    nir.Scale: ("scale",),
}
