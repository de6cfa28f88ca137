"""The `snntorch` backend: a torch executor of any supported NIR graph, step by step.

It implements the discretisation written down in docs/nir-semantics.md: LIF populations run as
snnTorch `Leaky` neurons (β = 1 − dt/tau, input scaled by dt·r/tau, reset to zero), every other
node in plain torch; nodes run in topological order, and an edge that closes a cycle carries the
previous step's value. Samples are processed as one batch (in chunks of `batch_size`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import nir
import numpy as np
import snntorch as snn
import torch
from torch.nn import functional as F

from mksgn.convert.nir_graph import FlatGraph, back_edges, flatten_graph
from mksgn.convert.nir_nodes import DEFAULT_DT, MAX_DELAY_STEPS, SUPPORTED_NAMES
from mksgn.convert.nir_validation import input_shape, node_error, validate_graph
from mksgn.errors import MksgnError
from mksgn.targets.base import RunResult

# Exporters compute tau and r (or w_in) separately, often in float32, so r = tau/dt holds only to
# rounding; gains this close to 1 are exactly 1 (what snnTorch computes).
UNIT_GAIN_TOLERANCE = 1e-6


# ---------------------------------------------------------------------------------------------
# Graph preparation: nested graphs inlined, cycles broken, an execution order.


@dataclass
class Schedule:
    """Execution order and, per node, its sources of this step and of the previous step."""

    order: list[str]
    now: dict[str, list[str]]
    previous: dict[str, list[str]]


def schedule(flat: FlatGraph) -> Schedule:
    """Depth-first search from the Input nodes (file order, successors in edge order): an edge to
    a node still on the search path closes a cycle and carries the previous step's value."""
    successors: dict[str, list[str]] = {name: [] for name in flat.nodes}
    for source, target in flat.edges:
        successors[source].append(target)
    cyclic = back_edges(flat.nodes, flat.edges, flat.inputs)
    now: dict[str, list[str]] = {name: [] for name in flat.nodes}
    previous: dict[str, list[str]] = {name: [] for name in flat.nodes}
    for source, target in flat.edges:
        (previous if (source, target) in cyclic else now)[target].append(source)
    # Kahn's algorithm on the acyclic rest, keeping file order among ready nodes.
    waiting = {name: len(set(now[name])) for name in flat.nodes}
    position = {name: index for index, name in enumerate(flat.nodes)}
    ready = sorted((name for name, count in waiting.items() if count == 0), key=position.get)
    order: list[str] = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for following in dict.fromkeys(successors[node]):
            if (node, following) in cyclic:
                continue
            waiting[following] -= 1
            if waiting[following] == 0:
                ready.append(following)
                ready.sort(key=position.get)
    return Schedule(order, now, previous)


# ---------------------------------------------------------------------------------------------
# Node kernels: one object per node, `reset()` between batches, `step(x)` once per time step.


def tensor(value: object, dtype: torch.dtype) -> torch.Tensor:
    """A parameter array as a torch tensor of the working dtype."""
    return torch.as_tensor(np.asarray(value, dtype=np.float64)).to(dtype)


def unit_snapped(gain: np.ndarray) -> np.ndarray:
    """Gains within rounding of 1 become exactly 1."""
    return np.where(np.abs(gain - 1.0) <= UNIT_GAIN_TOLERANCE, 1.0, gain)


class Kernel:
    """A stateless node: `step` maps the summed input of one time step to the output."""

    stateful = False

    def reset(self) -> None:
        """Forget all state (before a new batch of samples)."""

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One time step."""
        return x


class Function(Kernel):
    """A stateless node computed by a function of its input."""

    def __init__(self, function) -> None:
        self.function = function

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the function."""
        return self.function(x)


def as_ints(value: object) -> tuple[int, ...]:
    """Stride/dilation/kernel values as a tuple of ints."""
    return tuple(int(v) for v in np.atleast_1d(np.asarray(value)))


def conv_padding(value: object) -> str | tuple[int, ...]:
    """NIR padding (int, pair or 'same'/'valid') in torch's form."""
    if isinstance(value, (str, bytes)):
        return value.decode() if isinstance(value, bytes) else value
    return as_ints(value)


def conv_kernel(node: nir.Conv1d | nir.Conv2d, dtype: torch.dtype) -> Kernel:
    """Conv1d/Conv2d over (batch, C, *spatial) with torch's cross-correlation convention."""
    weight, bias = tensor(node.weight, dtype), tensor(node.bias, dtype)
    convolve = F.conv1d if isinstance(node, nir.Conv1d) else F.conv2d
    rank = 1 if isinstance(node, nir.Conv1d) else 2
    padding = conv_padding(node.padding)
    if not isinstance(padding, str):
        padding = padding * rank if len(padding) == 1 else padding
    stride, dilation = as_ints(node.stride), as_ints(node.dilation)
    stride = stride * rank if len(stride) == 1 else stride
    dilation = dilation * rank if len(dilation) == 1 else dilation
    groups = int(np.asarray(node.groups))
    return Function(lambda x: convolve(x, weight, bias, stride, padding, dilation, groups))


def pool_kernel(node: nir.SumPool2d | nir.AvgPool2d) -> Kernel:
    """SumPool2d (window sum) or AvgPool2d (window mean, padding counted as zeros)."""
    kernel = as_ints(node.kernel_size)
    kernel = kernel * 2 if len(kernel) == 1 else kernel
    stride, padding = as_ints(node.stride), as_ints(node.padding)
    stride = stride * 2 if len(stride) == 1 else stride
    padding = padding * 2 if len(padding) == 1 else padding
    divisor = 1 if isinstance(node, nir.SumPool2d) else None
    return Function(
        lambda x: F.avg_pool2d(
            x, kernel, stride, padding, count_include_pad=True, divisor_override=divisor
        )
    )


def flatten_kernel(node: nir.Flatten) -> Kernel:
    """Flatten; NIR's dims exclude the batch axis, so non-negative dims shift by one."""
    start = node.start_dim + 1 if node.start_dim >= 0 else node.start_dim
    end = node.end_dim + 1 if node.end_dim >= 0 else node.end_dim
    return Function(lambda x: torch.flatten(x, start, end))


class DelayKernel(Kernel):
    """y(t) = x(t − d) with d = delay/dt steps per element; zero before the first input."""

    stateful = True

    def __init__(self, name: str, node: nir.Delay, dt: float, dtype: torch.dtype) -> None:
        steps = np.asarray(node.delay, dtype=np.float64) / dt
        rounded = np.rint(steps)
        if np.any(np.abs(steps - rounded) > 1e-6) or np.any(rounded < 0):
            raise node_error(
                name, node, f"delays must be non-negative whole multiples of dt = {dt}"
            )
        if np.any(rounded > MAX_DELAY_STEPS):  # the delay line stores this many steps
            raise node_error(name, node, f"delays must be at most {MAX_DELAY_STEPS} steps")
        self.steps = torch.as_tensor(rounded.astype(np.int64))
        self.depth = int(rounded.max()) if rounded.size else 0
        self.history: list[torch.Tensor] = []

    def reset(self) -> None:
        """Empty the delay line."""
        self.history = []

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """Push x, return each element's value from `steps` steps ago."""
        self.history = [x, *self.history][: self.depth + 1]
        past = torch.stack(
            self.history + [torch.zeros_like(x)] * (self.depth + 1 - len(self.history))
        )
        index = self.steps.expand(x.shape).unsqueeze(0)
        return torch.gather(past, 0, index).squeeze(0)


class Leaky(Kernel):
    """LIF, LI, IF, I: v ← decay·v + gain·x + leak, then (if spiking) spike v > θ, v ← v_reset.

    LIF populations with reset to 0 and 0 ≤ β ≤ 1 run as snnTorch `Leaky(reset_mechanism="zero")`.
    """

    stateful = True

    def __init__(
        self,
        decay: np.ndarray,
        gain: np.ndarray,
        leak: np.ndarray,
        threshold: np.ndarray | None,
        reset: np.ndarray | None,
        dtype: torch.dtype,
    ) -> None:
        self.dtype = dtype
        self.decay, self.gain = tensor(decay, dtype), tensor(unit_snapped(gain), dtype)
        self.unit_gain = bool(np.all(unit_snapped(gain) == 1.0))
        self.leak = tensor(leak, dtype) if np.any(leak) else None
        self.threshold = None if threshold is None else tensor(threshold, dtype)
        self.reset_value = None if reset is None else tensor(reset, dtype)
        self.neuron: snn.Leaky | None = None
        if threshold is not None and not np.any(reset) and np.all((decay >= 0) & (decay <= 1)):
            self.neuron = snn.Leaky(
                beta=self.decay, threshold=self.threshold, reset_mechanism="zero"
            )
            # snnTorch keeps every neuron ever built in a class-level list (for its hidden-state
            # helpers); compiled graphs must not live forever through it.
            snn.SpikingNeuron.instances.remove(self.neuron)
        self.v: torch.Tensor | None = None

    def reset(self) -> None:
        """Membrane back to 0."""
        self.v = None

    def current(self, x: torch.Tensor) -> torch.Tensor:
        """The input as the membrane receives it: gain·x (+ leak)."""
        current = x if self.unit_gain else self.gain * x
        return current if self.leak is None else current + self.leak

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One Euler step; returns spikes (spiking neurons) or the membrane (LI, I)."""
        current = self.current(x)
        if self.v is None:
            self.v = torch.zeros(
                torch.broadcast_shapes(current.shape, self.decay.shape), dtype=self.dtype
            )
        if self.neuron is not None:
            spikes, self.v = self.neuron(current, self.v)
            return spikes.to(self.dtype)
        self.v = self.decay * self.v + current
        if self.threshold is None:
            return self.v
        spikes = self.v > self.threshold
        self.v = torch.where(spikes, self.reset_value.expand_as(self.v), self.v)
        return spikes.to(self.dtype)


class Cuba(Kernel):
    """CubaLIF / CubaLI: I ← α·I + a·x, then the membrane integrates the updated I in the same
    step: v ← β·v + b·I + leak, spike v > θ, v ← v_reset (CubaLIF only)."""

    stateful = True

    def __init__(self, synapse: Leaky, membrane: Leaky) -> None:
        self.synapse, self.membrane = synapse, membrane

    def reset(self) -> None:
        """Current and membrane back to 0."""
        self.synapse.reset()
        self.membrane.reset()

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One step of current then membrane."""
        return self.membrane.step(self.synapse.step(x))


def euler(tau: object, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """(decay 1 − dt/tau, dt/tau) of a forward-Euler step, computed in float64."""
    ratio = dt / np.asarray(tau, dtype=np.float64)
    return 1.0 - ratio, ratio


def neuron_kernel(node: nir.NIRNode, dt: float, dtype: torch.dtype) -> Kernel:
    """The kernel of a neuron node, following docs/nir-semantics.md."""
    r = np.asarray(node.r, dtype=np.float64)
    if isinstance(node, (nir.I, nir.IF)):
        ones, zeros = np.ones_like(r), np.zeros_like(r)
        if isinstance(node, nir.I):
            return Leaky(ones, r, zeros, None, None, dtype)
        return Leaky(ones, r, zeros, np.asarray(node.v_threshold), np.asarray(node.v_reset), dtype)
    if isinstance(node, (nir.LI, nir.LIF)):
        decay, ratio = euler(node.tau, dt)
        leak = ratio * np.asarray(node.v_leak, dtype=np.float64)
        if isinstance(node, nir.LI):
            return Leaky(decay, ratio * r, leak, None, None, dtype)
        threshold, reset = np.asarray(node.v_threshold), np.asarray(node.v_reset)
        return Leaky(decay, ratio * r, leak, threshold, reset, dtype)
    syn_decay, syn_ratio = euler(node.tau_syn, dt)
    synapse = Leaky(
        syn_decay,
        syn_ratio * np.asarray(node.w_in, dtype=np.float64),
        np.zeros(1),
        None,
        None,
        dtype,
    )
    decay, ratio = euler(node.tau_mem, dt)
    leak = ratio * np.asarray(node.v_leak, dtype=np.float64)
    if isinstance(node, nir.CubaLI):
        return Cuba(synapse, Leaky(decay, ratio * r, leak, None, None, dtype))
    threshold, reset = np.asarray(node.v_threshold), np.asarray(node.v_reset)
    return Cuba(synapse, Leaky(decay, ratio * r, leak, threshold, reset, dtype))


def build_kernel(name: str, node: nir.NIRNode, dt: float, dtype: torch.dtype) -> Kernel:
    """The kernel executing one (non-graph) NIR node."""
    if isinstance(node, (nir.Input, nir.Output)):
        return Kernel()
    if isinstance(node, nir.Affine):
        weight, bias = tensor(node.weight, dtype), tensor(node.bias, dtype)
        return Function(lambda x: torch.matmul(x, weight.transpose(-1, -2)) + bias)
    if isinstance(node, nir.Linear):
        weight = tensor(node.weight, dtype)
        return Function(lambda x: torch.matmul(x, weight.transpose(-1, -2)))
    if isinstance(node, nir.Scale):
        scale = tensor(node.scale, dtype)
        return Function(lambda x: x * scale)
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        return conv_kernel(node, dtype)
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        return pool_kernel(node)
    if isinstance(node, nir.Flatten):
        return flatten_kernel(node)
    if isinstance(node, nir.Delay):
        return DelayKernel(name, node, dt, dtype)
    if isinstance(node, nir.Threshold):
        threshold = tensor(node.threshold, dtype)
        return Function(lambda x: (x > threshold).to(dtype))
    if isinstance(node, (nir.I, nir.IF, nir.LI, nir.LIF, nir.CubaLI, nir.CubaLIF)):
        return neuron_kernel(node, dt, dtype)
    raise node_error(name, node, f"unsupported node type; supported: {SUPPORTED_NAMES}")


# ---------------------------------------------------------------------------------------------
# The executor.


class CompiledGraph:
    """A NIR graph prepared for step-by-step execution on batches of input sequences."""

    def __init__(self, graph: nir.NIRGraph, dt: float, dtype: torch.dtype) -> None:
        validate_graph(graph)
        self.input_shape = input_shape(graph)
        self.flat = flatten_graph(graph)
        self.schedule = schedule(self.flat)
        self.kernels = {
            name: build_kernel(name, node, dt, dtype) for name, node in self.flat.nodes.items()
        }
        self.dtype = dtype

    def names(self) -> list[str]:
        """Node names that can be recorded (nested nodes as 'subgraph.node')."""
        return list(self.flat.nodes)

    def step(
        self, x: torch.Tensor, previous: dict[str, torch.Tensor], silent: bool = False
    ) -> dict[str, torch.Tensor]:
        """One time step of every node. `silent`: stateful nodes output zeros and keep no state
        (the graph before its first step)."""
        (input_name,) = self.flat.inputs
        current: dict[str, torch.Tensor] = {}
        for name in self.schedule.order:
            if name == input_name:
                current[name] = x
                continue
            total = None
            for source in self.schedule.now[name]:
                total = current[source] if total is None else total + current[source]
            for source in self.schedule.previous[name]:
                if source in previous:
                    total = previous[source] if total is None else total + previous[source]
            kernel = self.kernels[name]
            if silent and kernel.stateful:
                current[name] = torch.zeros_like(total)
            else:
                current[name] = kernel.step(total)
        return current

    @torch.no_grad()
    def run(self, inputs: torch.Tensor, record: list[str]) -> dict[str, torch.Tensor]:
        """inputs (batch, T, *input shape) -> {node: (batch, T, *node shape)} for `record`."""
        for kernel in self.kernels.values():
            kernel.reset()
        traces: dict[str, list[torch.Tensor]] = {name: [] for name in record}
        previous: dict[str, torch.Tensor] = {}
        if any(self.schedule.previous.values()):
            # Before the first step a cycle-closing edge carries what its source gives for a
            # silent graph (neurons and delays at zero): the biases of stateless nodes.
            previous = self.step(torch.zeros_like(inputs[:, 0]), {}, silent=True)
        for step in range(inputs.shape[1]):
            current = self.step(inputs[:, step], previous)
            for name in record:
                traces[name].append(current[name])
            previous = current
        return {name: torch.stack(values, dim=1) for name, values in traces.items()}


class ReferenceTarget:
    """The snnTorch reference backend (implements targets.base.Target)."""

    name = "snntorch"

    def __init__(
        self, dt: float | None = None, dtype: torch.dtype = torch.float32, batch_size: int = 64
    ) -> None:
        self.dt, self.dtype, self.batch_size = dt, dtype, batch_size

    def compile(self, graph: nir.NIRGraph) -> CompiledGraph:
        """Prepare a graph (dt from the argument, else the graph metadata, else 1e-4)."""
        dt = self.dt
        if dt is None:
            dt = float((graph.metadata or {}).get("dt", DEFAULT_DT))
        return CompiledGraph(graph, dt, self.dtype)

    def run(
        self, graph: nir.NIRGraph, inputs: np.ndarray, record: tuple[str, ...] = ()
    ) -> RunResult:
        """Run inputs (samples, T, *input shape); record the Output node(s) and named nodes."""
        compiled = self.compile(graph)
        inputs = np.asarray(inputs)
        expected = compiled.input_shape
        if inputs.ndim != len(expected) + 2 or tuple(inputs.shape[2:]) != expected:
            raise MksgnError(
                f"inputs shaped {inputs.shape} do not fit the graph: expected (samples, time "
                f"steps, {', '.join(map(str, expected))})"
            )
        unknown = [name for name in record if name not in compiled.flat.nodes]
        if unknown:
            raise MksgnError(
                f"cannot record {unknown}: no such nodes; the graph has {compiled.names()}"
            )
        names = list(dict.fromkeys([*compiled.flat.outputs, *record]))
        samples, steps = inputs.shape[:2]
        started = time.perf_counter()
        chunks: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for first in range(0, samples, self.batch_size):
            chunk = np.ascontiguousarray(inputs[first : first + self.batch_size])
            batch = torch.from_numpy(chunk).to(self.dtype)
            for name, values in compiled.run(batch, names).items():
                chunks[name].append(values.numpy())
        wall = time.perf_counter() - started
        recorded = {
            name: np.concatenate(parts) if parts else np.zeros((0, steps))
            for name, parts in chunks.items()
        }
        return RunResult(
            backend=self.name,
            recorded=recorded,
            time_steps=int(steps),
            steps_per_sample=int(steps),
            wall_s_per_sample=wall / max(samples, 1),
            extra={"outputs": list(compiled.flat.outputs)},
        )
