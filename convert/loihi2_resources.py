"""What a lowered, quantised network would take on Loihi 2: neurons, stored synapses, synaptic
memory, fan-in and fan-out per layer, neuro cores and chips under the per-core limits, and which
layer breaks which limit. The limits, and where each comes from, are in docs/loihi2-resources.md.

A layer is one Lava population (a NIR neuron node, a readout, a bias source); its synapses are
stored on the cores of their target, as on Loihi. Zero weights are not stored. A convolution
stores its kernel once (Loihi 2 compresses convolutional connectivity), whether the CPU
simulation runs it as a Lava Conv or, for speed, as a Lava Sparse matrix; a Dense stores every
non-zero weight."""

from __future__ import annotations

import math

import numpy as np

from mksgn.convert.fixed_point import FixedPlan, FixedSynapse
from mksgn.convert.lava_plan import LavaPlan, Synapse, conv_taps

CORES_PER_CHIP = 128  # neuro cores per Loihi 2 chip (Intel's Loihi 2 brief)
NEURONS_PER_CORE = 8192  # most neurons one neuro core holds (1 M per chip / 128 cores)
NEURONS_PER_CHIP = 1_000_000  # Intel's Loihi 2 brief: "up to 1 million neurons"
SYNAPSES_PER_CHIP = 120_000_000  # Intel's Loihi 2 brief: "up to 120 million synapses"
# Each neuro core has 192 KB of memory shared by synapses, neuron state and routing (Intel's
# brief); mksgn assumes 128 KiB of it for synaptic weights, as Loihi 1's cores had.
SYNAPTIC_MEMORY_BITS_PER_CORE = 128 * 1024 * 8
WEIGHT_BITS = 8  # Lava's fixed-point weight mantissa (fixed_point.py)


def synapse_counts(
    syn: Synapse, fixed: FixedSynapse, target_shape: tuple[int, ...], source_size: int
) -> tuple[int, int, np.ndarray, np.ndarray]:
    """(connections, stored weights, fan-in per target neuron, fan-out per source neuron) of one
    synapse, counting only non-zero quantised weights (and its residual synapse's)."""
    weights = [fixed.weight] + ([fixed.residual] if fixed.residual is not None else [])
    fan_in = np.zeros(int(np.prod(target_shape)), dtype=np.int64)
    fan_out = np.zeros(source_size, dtype=np.int64)
    stored = 0
    for weight in weights:
        if syn.kind == "dense":
            nonzero = weight != 0
            fan_in += nonzero.sum(axis=1)
            fan_out += nonzero.sum(axis=0)
            stored += int(nonzero.sum())
            continue
        out_channels, in_channels = weight.shape[0], int(syn.conv["input_shape"][2])
        per_group_out, per_group_in = out_channels // int(syn.conv["groups"]), weight.shape[3]
        fan_in_2d = fan_in.reshape(-1, out_channels)
        fan_out_2d = fan_out.reshape(-1, in_channels)
        for tap, out_pos, in_pos in conv_taps(weight, syn.conv, target_shape):
            out_channel, local_in = np.nonzero(tap)
            in_channel = (out_channel // per_group_out) * per_group_in + local_in
            per_out = np.bincount(out_channel, minlength=out_channels)
            per_in = np.bincount(in_channel, minlength=in_channels)
            fan_in_2d[out_pos] += per_out
            fan_out_2d[in_pos] += per_in
        stored += int(np.count_nonzero(weight))
    return int(fan_in.sum()), stored, fan_in, fan_out


def loihi2_resources(plan: LavaPlan, fixed: FixedPlan) -> dict[str, object]:
    """The Loihi 2 resource report of a quantised plan (JSON-able; the `"loihi2"` key of
    `mksgn convert --json`)."""
    sizes = {name: int(np.prod(pop.lava_shape)) for name, pop in plan.populations.items()}
    sizes[plan.input_name] = int(np.prod(plan.input_lava_shape))
    fan_in = {name: np.zeros(size, dtype=np.int64) for name, size in sizes.items()}
    fan_out = {name: np.zeros(size, dtype=np.int64) for name, size in sizes.items()}
    connections = dict.fromkeys(sizes, 0)
    stored = dict.fromkeys(sizes, 0)
    for syn, fixed_syn in zip(plan.synapses, fixed.synapses, strict=True):
        target_shape = plan.populations[syn.target].lava_shape
        count, kept, into, out_of = synapse_counts(syn, fixed_syn, target_shape, sizes[syn.source])
        connections[syn.target] += count
        stored[syn.target] += kept
        fan_in[syn.target] += into
        fan_out[syn.source] += out_of
    layers, violations = [], []
    for name, pop in plan.populations.items():
        memory = stored[name] * WEIGHT_BITS
        cores = max(
            1,
            math.ceil(sizes[name] / NEURONS_PER_CORE),
            math.ceil(memory / SYNAPTIC_MEMORY_BITS_PER_CORE),
        )
        widest = int(fan_in[name].max(initial=0))
        layers.append(
            {
                "layer": name,
                "kind": pop.nir_type,
                "neurons": sizes[name],
                "synapses": connections[name],
                "stored_weights": stored[name],
                "synaptic_memory_bits": memory,
                "max_fan_in": widest,
                "max_fan_out": int(fan_out[name].max(initial=0)),
                "cores": cores,
            }
        )
        if widest * WEIGHT_BITS > SYNAPTIC_MEMORY_BITS_PER_CORE:
            violations.append(
                f"layer '{name}': one neuron's fan-in of {widest} weights needs "
                f"{widest * WEIGHT_BITS} bits, more than a core's {SYNAPTIC_MEMORY_BITS_PER_CORE}"
            )
        if cores > CORES_PER_CHIP:
            violations.append(
                f"layer '{name}': needs {cores} cores, more than one chip's {CORES_PER_CHIP}"
            )
    total_cores = sum(layer["cores"] for layer in layers)
    neurons = sum(layer["neurons"] for layer in layers)
    synapses = sum(layer["synapses"] for layer in layers)
    chips = max(
        math.ceil(total_cores / CORES_PER_CHIP),
        math.ceil(neurons / NEURONS_PER_CHIP),
        math.ceil(sum(layer["stored_weights"] for layer in layers) / SYNAPSES_PER_CHIP),
    )
    if chips > 1:
        violations.append(f"the network needs {chips} chips: it does not fit one Loihi 2 chip")
    return {
        "cores": total_cores,
        "chips": chips,
        "neurons": neurons,
        "synapses": synapses,
        "synaptic_memory_bits": sum(layer["synaptic_memory_bits"] for layer in layers),
        "input_max_fan_out": int(fan_out[plan.input_name].max(initial=0)),
        "layers": layers,
        "violations": violations,
    }


def format_loihi2(report: dict[str, object]) -> str:
    """The resource report as a terminal table."""
    lines = [
        f"Loihi 2: {report['cores']} neuro core(s) on {report['chips']} chip(s), "
        f"{report['neurons']:,} neurons, {report['synapses']:,} synapses, "
        f"{report['synaptic_memory_bits'] / 8 / 1024:,.1f} KiB of synaptic memory",
        f"{'layer':<28} {'neurons':>9} {'synapses':>12} {'memory KiB':>10} {'fan-in':>7} "
        f"{'fan-out':>7} {'cores':>5}",
    ]
    for layer in report["layers"]:
        lines.append(
            f"{layer['layer'][:28]:<28} {layer['neurons']:>9,} {layer['synapses']:>12,} "
            f"{layer['synaptic_memory_bits'] / 8 / 1024:>10,.1f} {layer['max_fan_in']:>7,} "
            f"{layer['max_fan_out']:>7,} {layer['cores']:>5}"
        )
    lines += [f"limit: {violation}" for violation in report["violations"]]
    return "\n".join(lines)
