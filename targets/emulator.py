"""Emulator backends (`loihi-emu`, `loihi-emu-float`): a LavaPlan executed step by step in NumPy.

It does what the Lava processes `build_lava` creates do, vectorised over a batch of samples:
each population is a LIFReset (Lava's fixed-point PyLifResetModelBitAcc or float
PyLifResetModelFloat), each synapse a Dense/Sparse/Conv that delivers its sum one step later,
followed by its identity hops (pure one-step delays). A sample runs T + pipeline-depth steps from
a zero state, each population resetting on the step its NIR step 0 arrives, exactly as the first
sample of a Lava run; samples of a batch run side by side with a state each.

Fixed point is exact integer arithmetic (sums of at most 2**53 run as float64 BLAS/scipy
products, which are exact there); where Lava's NumPy int32 arithmetic would wrap silently or a
24-bit state saturates, the emulator raises MksgnError instead. Float sums go through scipy csr
products, whose per-sample order of additions does not depend on the batch size, so results are
the same for every batch size; they equal Lava's to float rounding.
"""

from __future__ import annotations

import dataclasses
import time

import nir
import numpy as np

from mksgn.convert.lava_artifact import Artifact
from mksgn.convert.lava_graph import build_plan
from mksgn.convert.lava_plan import LavaPlan, conv_taps, max_row_sum
from mksgn.convert.loihi2 import ACTIVATION_SHIFT, DECAY_SHIFT, GRADED_MAX, INT32_MAX, STATE_LIMIT
from mksgn.convert.nir_io import DEFAULT_DT
from mksgn.errors import MksgnError
from mksgn.targets.base import RunResult
from mksgn.targets.job import LavaJob, prepare_job
from mksgn.targets.memory import check_fits, emulator_bytes

DEFAULT_BATCH_SIZE = 32
EXACT_FLOAT = 2**53  # integers up to this add exactly in float64
EXACT_FLOAT32 = 2**24  # ... and in float32


@dataclasses.dataclass
class EmulatedSynapse:
    """One synapse ready to run: its matrix (Lava flat order) and fixed-point arithmetic."""

    name: str
    source: str
    target: str
    matrix: object  # ConvKernel (convs), float64 ndarray (fixed-point dense) or scipy csr
    graded: bool
    delay: int  # steps between the source's output and its delivery: 1 + identity hops
    lava_conv: bool  # a Lava Conv: no weight exponent, 24-bit wrap of its output
    weight_exp: int


class ConvKernel:
    """A conv synapse run as a torch convolution (a matrix product for 1x1 kernels) on the
    source's Lava-layout spikes, instead of an expanded (N_out, N_in) matrix: far fewer bytes
    and vectorised, multithreaded kernels. `kernel @ source` maps (N_in, batch) to (N_out,
    batch) float64 like the matrix it stands for."""

    def __init__(self, kernel: np.ndarray, conv: dict, out_shape: tuple, float32: bool) -> None:
        """A Lava-layout kernel (C_out, kw, kh, C_in/groups) with geometry `conv` (W, H order)
        into a population of Lava shape `out_shape`; float32 only where sums stay exact."""
        import torch

        self.dtype = torch.float32 if float32 else torch.float64
        # Lava's Conv is a true convolution over (W, H): back to torch's cross-correlation.
        weight = np.asarray(kernel, dtype=np.float64).transpose(0, 3, 2, 1)[:, :, ::-1, ::-1]
        self.weight = torch.from_numpy(weight.copy()).to(self.dtype)
        self.in_shape, self.out_shape = tuple(conv["input_shape"]), tuple(out_shape)
        self.stride = tuple(conv["stride"])[::-1]
        self.padding = tuple(conv["padding"])[::-1]
        self.dilation = tuple(conv["dilation"])[::-1]
        self.groups = int(conv["groups"])
        self.pointwise = (
            weight.shape[2:] == (1, 1)
            and self.groups == 1
            and self.stride == (1, 1)
            and self.padding == (0, 0)
        )
        if self.pointwise:
            self.weight = self.weight[:, :, 0, 0].contiguous()

    def __matmul__(self, source: np.ndarray) -> np.ndarray:
        """The synapse's output (N_out, batch) for the source's values (N_in, batch)."""
        import torch

        batch = source.shape[1]
        size = int(np.prod(self.out_shape))
        if not source.any():  # a silent source: binary spikes are often all zero
            return np.zeros((size, batch))
        in_w, in_h, in_c = self.in_shape
        x = torch.from_numpy(np.asarray(source)).to(self.dtype)
        if self.pointwise:
            # (W·H, C, B) -> (C, W·H·B); the product; back to (W·H·C_out, B)
            x = x.reshape(in_w * in_h, in_c, batch).transpose(0, 1).reshape(in_c, -1)
            y = (self.weight @ x).reshape(-1, in_w * in_h, batch).transpose(0, 1)
        else:
            x = x.reshape(in_w, in_h, in_c, batch).permute(3, 2, 1, 0)  # (B, C, H, W)
            y = torch.nn.functional.conv2d(
                x,
                self.weight,
                stride=self.stride,
                padding=self.padding,
                dilation=self.dilation,
                groups=self.groups,
            ).permute(3, 2, 1, 0)  # (W', H', C_out, B)
        return y.reshape(size, batch).to(torch.float64).numpy()

    def nbytes(self) -> int:
        """Bytes the kernel takes."""
        return self.weight.element_size() * self.weight.nelement()


@dataclasses.dataclass
class EmulatedPopulation:
    """One LIFReset population's parameters (integers in fixed point)."""

    name: str
    size: int
    depth: int
    du: float | int
    dv: float | int
    vth: float | int  # fixed point: already shifted (vth << 6)
    bias: np.ndarray  # (size, 1); fixed point: bias_mant << bias_exp


class EmulatorTarget:
    """Run a NIR graph through the LavaPlan emulator, `batch_size` samples at a time."""

    def __init__(
        self,
        fixed_point: bool = True,
        batch_size: int | None = None,
        dt: float = DEFAULT_DT,
        input_abs_max: float | None = None,
        artifact: Artifact | None = None,
    ) -> None:
        """Fixed point (`loihi-emu`, equal to lava-fixed) or float (`loihi-emu-float`);
        batch_size None takes DEFAULT_BATCH_SIZE; input_abs_max and artifact as for LavaTarget."""
        batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
        if batch_size < 1:
            raise MksgnError(f"batch size must be at least 1, got {batch_size}")
        self.fixed_point = fixed_point
        self.batch_size = int(batch_size)
        self.dt = dt
        self.input_abs_max = input_abs_max
        self.artifact = artifact
        self.name = "loihi-emu" if fixed_point else "loihi-emu-float"

    def run(
        self, graph: nir.NIRGraph, inputs: np.ndarray, record: tuple[str, ...] = ()
    ) -> RunResult:
        """Run `inputs` (samples, T, *input shape) in batches."""
        plan = self.artifact.plan if self.artifact else build_plan(graph, self.dt)
        return self.run_plan(plan, inputs, record)

    def run_plan(
        self, plan: LavaPlan, inputs: np.ndarray, record: tuple[str, ...] = ()
    ) -> RunResult:
        """Run an already lowered plan (see `run`)."""
        from tqdm import tqdm

        stored = self.artifact.fixed if self.artifact else None
        job = prepare_job(plan, inputs, record, self.fixed_point, self.input_abs_max, stored)
        check_fits(self.name, *emulator_bytes(plan), min(self.batch_size, job.samples))
        started = time.perf_counter()
        network = Network(job)
        built = time.perf_counter()
        parts: list[dict[str, np.ndarray]] = []
        batches = range(0, job.samples, self.batch_size)
        with tqdm(
            total=job.samples, unit="sample", disable=len(batches) <= 1, desc=self.name
        ) as progress:
            for start in batches:
                stop = min(start + self.batch_size, job.samples)
                parts.append(job.align(network.run(start, stop), stop - start))
                progress.update(stop - start)
        recorded = {
            node: np.concatenate([part[node] for part in parts])
            if parts
            else np.zeros((0, job.steps, *plan.populations[plan.records[node][0]].nir_shape))
            for node in job.nodes
        }
        finished = time.perf_counter()
        extra = {
            "batch_size": self.batch_size,
            "build_s": built - started,
            "run_s_per_sample": (finished - built) / max(job.samples, 1),
        }
        return job.result(self.name, recorded, finished - started, extra)


class Network:
    """The plan's populations and synapses prepared once, run on batches of a job's samples."""

    def __init__(self, job: LavaJob) -> None:
        """Build every synapse matrix (Lava's weight clipping and truncation in fixed point)."""
        self.job = job
        plan, fixed = job.plan, job.fixed
        self.populations: dict[str, EmulatedPopulation] = {}
        for name, pop in plan.populations.items():
            size = int(np.prod(pop.lava_shape))
            if fixed is None:
                du, dv, vth = pop.du, pop.dv, pop.vth
                bias = np.asarray(pop.bias, dtype=np.float64).reshape(size, 1)
            else:
                params = fixed.populations[name].lava_params()
                du, dv = int(params["du"]), int(params["dv"])
                vth = int(params["vth"]) << ACTIVATION_SHIFT
                mant = np.broadcast_to(params["bias_mant"], pop.lava_shape).astype(np.int64)
                bias = (mant << int(params["bias_exp"])).reshape(size, 1)
            self.populations[name] = EmulatedPopulation(name, size, pop.depth, du, dv, vth, bias)
        self.synapses = [self.synapse(index, syn) for index, syn in enumerate(plan.synapses)]
        # A fixed-point synapse's residual part is a second Lava synapse beside it.
        self.synapses += [
            self.synapse(index, syn, residual=True)
            for index, syn in enumerate(plan.synapses)
            if fixed is not None and fixed.synapses[index].residual is not None
        ]

    def synapse(self, index: int, syn: object, residual: bool = False) -> EmulatedSynapse:
        """One plan synapse (or, with `residual`, its fixed-point residual part) to run."""
        import scipy.sparse

        plan, fixed = self.job.plan, self.job.fixed
        qsyn = None if fixed is None else fixed.synapses[index]
        weight = syn.weight if qsyn is None else qsyn.residual if residual else qsyn.weight
        lava_conv = syn.kind == "conv" and not syn.sparse
        out_shape = plan.populations[syn.target].lava_shape
        matrix = np.asarray(weight)
        weight_exp = 0
        if qsyn is not None and not lava_conv:
            # Lava's Dense and Sparse clip and truncate the weights on their first step (Conv
            # does neither and ignores the exponent).
            from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

            if syn.kind == "conv":
                # The sign mode of the Sparse matrix: the kernel taps it holds, and its zeros.
                held = [tap[tap != 0] for tap, out, _ in conv_taps(matrix, syn.conv, out_shape)]
                sign_mode = determine_sign_mode(np.concatenate([*held, np.zeros(1)]))
            else:
                sign_mode = determine_sign_mode(matrix)
            matrix = clip_weights(matrix, sign_mode, num_bits=8)
            matrix = truncate_weights(matrix, sign_mode, 8)
            weight_exp = int(qsyn.residual_exp if residual else qsyn.weight_exp)
        largest_sum = 0.0
        if qsyn is not None:
            largest_input = GRADED_MAX if syn.graded else 1
            largest_sum = float(max_row_sum(syn, matrix)) * largest_input
            if largest_sum >= EXACT_FLOAT:
                raise MksgnError(
                    f"synapse '{syn.name}': its fixed-point sums could exceed 2**53; the "
                    "emulator cannot add them exactly"
                )
        if syn.kind == "conv":
            # float32 adds integers exactly while every partial sum stays below 2**24.
            exact32 = qsyn is not None and largest_sum < EXACT_FLOAT32
            matrix = ConvKernel(matrix, syn.conv, out_shape, exact32)
        elif qsyn is None:
            matrix = scipy.sparse.csr_matrix(matrix, dtype=np.float64)
            matrix.sort_indices()
        else:
            matrix = np.ascontiguousarray(matrix, dtype=np.float64)
        return EmulatedSynapse(
            name=f"{syn.name} (residual)" if residual else syn.name,
            source=syn.source,
            target=syn.target,
            matrix=matrix,
            graded=syn.graded,
            delay=1 + syn.extra_hops,
            lava_conv=lava_conv,
            weight_exp=weight_exp,
        )

    def run(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Raw series (samples·period, *Lava shape) of every recorded population for samples
        [start, stop), each from a zero state, laid out like a Lava run's."""
        job, plan = self.job, self.job.plan
        batch, period = stop - start, job.period
        fixed = job.fixed is not None
        dtype = np.int64 if fixed else np.float64
        # (time, neurons, batch): the input of every step, as the source sends it.
        data = job.stream_data(start, stop).reshape(-1, batch, period)
        data = np.ascontiguousarray(data.transpose(2, 0, 1)).astype(np.float64)
        u = {name: np.zeros((pop.size, batch), dtype) for name, pop in self.populations.items()}
        v = {name: np.zeros((pop.size, batch), dtype) for name, pop in self.populations.items()}
        spikes = {name: np.zeros((pop.size, batch)) for name, pop in self.populations.items()}
        # Per synapse, the values it delivers on coming steps (index 0: the next step).
        pending = [
            [np.zeros((self.populations[s.target].size, batch), dtype) for _ in range(s.delay)]
            for s in self.synapses
        ]
        incoming: dict[str, list[int]] = {name: [] for name in self.populations}
        for index, syn in enumerate(self.synapses):
            incoming[syn.target].append(index)
        recorded = {
            name: np.zeros((period, self.populations[name].size, batch), dtype)
            for name in job.populations
        }
        for step in range(1, period + 1):
            delivered = [queue.pop(0) for queue in pending]
            for name, pop in self.populations.items():
                a_in = np.zeros((pop.size, batch), dtype)
                for index in incoming[name]:
                    a_in = a_in + delivered[index]
                if step == pop.depth + 1:  # LIFReset: NIR step 0 arrives, state from zero
                    u[name][:] = 0
                    v[name][:] = 0
                if fixed:
                    fired = self.fixed_lif(pop, u[name], v[name], a_in)
                else:
                    fired = self.float_lif(pop, u[name], v[name], a_in)
                spikes[name] = fired.astype(np.float64)
                if name in recorded:
                    kind = job.populations[name]
                    recorded[name][step - 1] = fired if kind == "spikes" else v[name]
            for index, syn in enumerate(self.synapses):
                source = data[step - 1] if syn.source == plan.input_name else spikes[syn.source]
                pending[index].append(self.transmit(syn, source, fixed))
        # (period, neurons, batch) -> (batch·period, *Lava shape)
        return {
            name: series.transpose(2, 0, 1).reshape(
                (batch * period, *plan.populations[name].lava_shape)
            )
            for name, series in recorded.items()
        }

    @staticmethod
    def float_lif(
        pop: EmulatedPopulation, u: np.ndarray, v: np.ndarray, a_in: np.ndarray
    ) -> np.ndarray:
        """PyLifResetModelFloat's step, in place; returns the spikes."""
        u[:] = u * (1 - pop.du)
        u += a_in
        v[:] = v * (1 - pop.dv) + u + pop.bias
        fired = v > pop.vth
        v[fired] = 0
        return fired

    def fixed_lif(
        self, pop: EmulatedPopulation, u: np.ndarray, v: np.ndarray, a_in: np.ndarray
    ) -> np.ndarray:
        """PyLifResetModelBitAcc's step, in place; returns the spikes. MksgnError where Lava's
        int32 arithmetic would wrap or the 24-bit state saturates."""
        if np.abs(a_in).max(initial=0) > INT32_MAX >> ACTIVATION_SHIFT:
            self.overflow(pop.name, "its summed synaptic input overflows int32 after << 6")
        decayed_u = self.decay(u, pop.du + 1)
        current = decayed_u + (a_in << ACTIVATION_SHIFT)
        if np.any(current >= STATE_LIMIT) or np.any(current <= -STATE_LIMIT):
            self.overflow(pop.name, "its current u wrapped around 24 bits")
        u[:] = current
        voltage = self.decay(v, pop.dv) + u + pop.bias
        if np.any(voltage >= STATE_LIMIT - 1) or np.any(voltage <= -(STATE_LIMIT - 1)):
            self.overflow(pop.name, "its voltage v saturated at 24 bits")
        v[:] = voltage
        fired = v > pop.vth
        v[fired] = 0
        return fired

    @staticmethod
    def decay(state: np.ndarray, decay: int) -> np.ndarray:
        """state · (4096 - decay) / 4096, truncated toward zero as Lava does."""
        product = state * ((1 << DECAY_SHIFT) - decay)
        return np.sign(product) * (np.abs(product) >> DECAY_SHIFT)

    def transmit(self, syn: EmulatedSynapse, source: np.ndarray, fixed: bool) -> np.ndarray:
        """What the synapse buffers this step from its source's output (neurons, batch)."""
        summed = syn.matrix @ source
        if not fixed:
            return np.asarray(summed)
        summed = np.rint(np.asarray(summed)).astype(np.int64)
        if syn.lava_conv:
            # Lava's Conv wraps its output to 24 bits; reaching that is an overflow.
            if np.abs(summed).max(initial=0) >= GRADED_MAX:
                self.overflow(syn.target, f"Conv synapse '{syn.name}' overflows 24 bits")
            return summed
        if syn.graded and np.abs(summed).max(initial=0) > INT32_MAX:
            # Lava's graded int32 dot product wraps; a spike sum is int64 until the shift.
            self.overflow(syn.target, f"synapse '{syn.name}' overflows its int32 sum")
        exp = syn.weight_exp
        shifted = summed << exp if exp > 0 else summed >> -exp
        if np.abs(shifted).max(initial=0) > INT32_MAX:
            self.overflow(syn.target, f"synapse '{syn.name}' overflows int32 after its exponent")
        return shifted

    @staticmethod
    def overflow(layer: str, what: str) -> None:
        """Raise the fixed-point overflow error for a layer."""
        raise MksgnError(
            f"layer '{layer}': fixed-point overflow ({what}); Lava would wrap silently. Scale "
            "the layer's weights down or lower its threshold"
        )
