"""Emulator backends (`loihi-emu`, `loihi-emu-float`): a LavaPlan executed layer by layer in torch.

It computes what the Lava processes `build_lava` creates compute, vectorised over a batch of
samples and over time: each population is a LIFReset (Lava's fixed-point PyLifResetModelBitAcc or
float PyLifResetModelFloat), each synapse a Dense/Sparse/Conv that delivers its sum one step later,
followed by its identity hops (pure one-step delays). A sample runs from a zero state, each
population resetting on the step its NIR step 0 arrives, exactly as the first sample of a Lava
run; samples of a batch run side by side with a state each.

Since a population outside a cycle sees only what earlier populations sent, the emulator runs the
plan one strongly connected block at a time (see `schedule`): a synapse's products for every step
of the block's window are one matrix product, and only the neuron update steps through time. A
population is run only over the steps whose values reach a recorded population (its T steps after
its reset, unless a delay line or a cycle carries earlier ones).

Fixed point is exact integer arithmetic carried in floats: float64 holds every integer below
2**53 exactly, float32 every one below 2**24. The decays are one exact product truncated toward
zero, shifts are exact products by powers of two (floored for right shifts). Synapse sums run in
int8 or float32 where a proven bound keeps every partial sum exact (see emulator_products), and a
population's v in float32 where its input's bound keeps every value it takes below 2**24 (see
float32_room), else in float64. Where Lava's NumPy int32 arithmetic would wrap silently or a
24-bit state saturates, the emulator raises MksgnError instead. Float sums of dense synapses go
through scipy csr products, whose per-sample order of additions does not depend on the batch
size; results equal Lava's to float rounding.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import torch

from mksgn.convert.lava_plan import LavaPlan, conv_taps, max_row_sum
from mksgn.convert.loihi2 import (
    ACTIVATION_SHIFT,
    DECAY_UNITY,
    GRADED_MAX,
    INT32_MAX,
    STATE_LIMIT,
)
from mksgn.errors import MksgnError
from mksgn.targets.base import RunResult
from mksgn.targets.emulator_neurons import (
    EXACT_FLOAT32,
    EmulatedPopulation,
    current_bound,
    fire,
    fixed_lif,
    float32_room,
    float_lif,
    overflow,
)
from mksgn.targets.emulator_products import (
    INT8_EXACT_SUM,
    ConvKernel,
    CsrMatrix,
    DenseMatrix,
)
from mksgn.targets.emulator_schedule import Block, Series, add_series, repeats, schedule
from mksgn.targets.job import LavaJob, prepare_job
from mksgn.targets.memory import check_fits, emulator_bytes, freed_memory_reused
from mksgn.targets.plan_target import PlanTarget

# Samples side by side: 8 ran 1.2-1.8x faster than 32 on the tiny and paper MK-SGNs (their
# per-step arrays stay in cache; benchmarks/fast_execution.py).
DEFAULT_BATCH_SIZE = 8
EXACT_FLOAT = 2**53  # integers up to this add exactly in float64


@dataclasses.dataclass
class EmulatedSynapse:
    """One synapse ready to run: its matrix (Lava flat order) and fixed-point arithmetic."""

    name: str
    source: str
    target: str
    matrix: object  # ConvKernel (convs), DenseMatrix (fixed-point dense) or scipy csr (float)
    graded: bool
    delay: int  # steps between the source's output and its delivery: 1 + identity hops
    lava_conv: bool  # a Lava Conv: no weight exponent, 24-bit wrap of its output
    weight_exp: int
    largest_sum: float  # fixed point: bound on |sum| into one neuron before the exponent


def largest_magnitude(values: torch.Tensor) -> float:
    """The largest |value| (0 for none), without the temporary array of abs()."""
    if not values.numel():
        return 0.0
    low, high = torch.aminmax(values)
    return max(float(high), -float(low))


class EmulatorTarget(PlanTarget):
    """Run a NIR graph through the LavaPlan emulator, `batch_size` samples at a time."""

    names = ("loihi-emu-float", "loihi-emu")
    default_batch_size = DEFAULT_BATCH_SIZE

    def __init__(self, fixed_point: bool = True, device: str = "cpu", **options: Any) -> None:
        """Fixed point (`loihi-emu`, equal to lava-fixed) or float (`loihi-emu-float`); device a
        torch device ("cuda" where a GPU is present); the other options (batch_size, dt,
        input_abs_max, artifact) as for PlanTarget."""
        super().__init__(fixed_point, **options)
        self.device = device

    def run_plan(
        self, plan: LavaPlan, inputs: np.ndarray, record: tuple[str, ...] = ()
    ) -> RunResult:
        """Run an already lowered plan (see `run`), with freed memory kept for reuse."""
        from tqdm import tqdm

        with freed_memory_reused():
            stored = self.artifact.fixed if self.artifact else None
            job = prepare_job(plan, inputs, record, self.fixed_point, self.input_abs_max, stored)
            blocks = schedule(plan, job.steps, tuple(job.populations))
            widest = max((block.last - block.first + 1 for block in blocks), default=1)
            check_fits(self.name, *emulator_bytes(plan, widest), min(self.batch_size, job.samples))
            started = time.perf_counter()
            network = Network(job, self.device, blocks)
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

    def __init__(
        self, job: LavaJob, device: str = "cpu", blocks: list[Block] | None = None
    ) -> None:
        """Build every synapse matrix (Lava's weight clipping and truncation in fixed point);
        `blocks` as `schedule` gives them for the job (None: scheduled here)."""
        self.job, self.device = job, device
        # The input's and the synapse sums' dtype where nothing asks for float64: fixed point's
        # 24-bit integers are exact in float32.
        self.values_dtype = torch.float64 if job.fixed is None else torch.float32
        if str(device).startswith("cuda"):
            # TF32 would round the float32 products that fixed point relies on being exact.
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        plan, fixed = job.plan, job.fixed
        self.populations: dict[str, EmulatedPopulation] = {}
        for name, pop in plan.populations.items():
            size = int(np.prod(pop.lava_shape))
            if fixed is None:
                du, dv, vth = pop.du, pop.dv, pop.vth
                bias = np.asarray(pop.bias, dtype=np.float64).reshape(1, size)
            else:
                params = fixed.populations[name].lava_params()
                du, dv = int(params["du"]), int(params["dv"])
                vth = int(params["vth"]) << ACTIVATION_SHIFT
                mant = np.broadcast_to(params["bias_mant"], pop.lava_shape).astype(np.int64)
                bias = (mant << int(params["bias_exp"])).reshape(1, size).astype(np.float64)
            rests = not bias.any() and vth >= 0
            forgets = bool(np.all(np.asarray(du) == (1.0 if fixed is None else DECAY_UNITY - 1)))
            bias = (
                torch.as_tensor(np.ascontiguousarray(bias), device=device) if bias.any() else None
            )
            self.populations[name] = EmulatedPopulation(
                name, size, pop.depth, du, dv, vth, bias, rests, forgets
            )
        self.synapses = [self.synapse(index, syn) for index, syn in enumerate(plan.synapses)]
        # A fixed-point synapse's residual part is a second Lava synapse beside it.
        self.synapses += [
            self.synapse(index, syn, residual=True)
            for index, syn in enumerate(plan.synapses)
            if fixed is not None and fixed.synapses[index].residual is not None
        ]
        # run_plan schedules first to check the memory the widest block needs.
        if blocks is None:
            blocks = schedule(plan, job.steps, tuple(job.populations))
        self.blocks = blocks
        # Fixed point: a bound on |a_in| per population (its synapses' bounds after exponents).
        self.input_bound = dict.fromkeys(self.populations, 0.0)
        for syn in self.synapses:
            self.input_bound[syn.target] += syn.largest_sum * 2.0**syn.weight_exp
        if fixed is not None:
            for name, pop in self.populations.items():
                pop.checks_current = current_bound(pop, self.input_bound[name]) >= STATE_LIMIT
                pop.float32_below = float32_room(pop)
                if pop.bias is not None:
                    pop.bias32 = pop.bias.to(torch.float32)

    def synapse(self, index: int, syn: object, residual: bool = False) -> EmulatedSynapse:
        """One plan synapse (or, with `residual`, its fixed-point residual part) to run."""
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
        # float32 adds integers exactly while every partial sum stays below 2**24.
        exact32 = qsyn is not None and largest_sum < EXACT_FLOAT32
        # 8-bit weights times spikes (exact while their sums stay small) or times integers
        # (digit by digit): int8 products.
        int8_inputs = None
        if qsyn is not None and str(self.device) == "cpu":
            if syn.graded:
                int8_inputs = "integers"
            elif largest_sum < INT8_EXACT_SUM:
                int8_inputs = "spikes"
        if syn.kind == "conv":
            matrix = ConvKernel(matrix, syn.conv, out_shape, exact32, self.device, int8_inputs)
        elif qsyn is None:
            matrix = CsrMatrix(matrix)
        else:
            matrix = DenseMatrix(matrix, exact32, self.device, int8_inputs)
        return EmulatedSynapse(
            name=f"{syn.name} (residual)" if residual else syn.name,
            source=syn.source,
            target=syn.target,
            matrix=matrix,
            graded=syn.graded,
            delay=1 + syn.extra_hops,
            lava_conv=lava_conv,
            weight_exp=weight_exp,
            largest_sum=largest_sum,
        )

    def run(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Raw series (samples·period, *Lava shape) of every recorded population for samples
        [start, stop), each from a zero state, laid out like a Lava run's (steps no recorded
        value depends on are left zero)."""
        job, plan = self.job, self.job.plan
        batch, period = stop - start, job.period
        # The source sends a sample's T steps, then zeros while the pipeline drains (steps the
        # series leaves out).
        sent = torch.as_tensor(job.sample_steps(start, stop), dtype=self.values_dtype)
        sent = sent.to(self.device)
        pattern = repeats(sent) + [-1] * (period - job.steps)
        outputs = {plan.input_name: Series(sent, 1, pattern)}
        readers: dict[str, int] = {}
        for block in self.blocks:
            for syn in self.synapses:
                if syn.target in block.populations and syn.source not in block.populations:
                    readers[syn.source] = readers.get(syn.source, 0) + 1
        raw = {
            name: np.zeros((batch, period, self.populations[name].size)) for name in job.populations
        }
        for block in self.blocks:
            spikes, recorded = self.run_block(block, outputs, batch)
            for syn in self.synapses:
                if syn.target in block.populations and syn.source not in block.populations:
                    readers[syn.source] -= 1
                    if readers[syn.source] == 0:
                        del outputs[syn.source]  # no later block reads it
            outputs.update(spikes)
            for name, values in recorded.items():
                raw[name][:, block.first - 1 : block.last] = values.transpose(0, 1).cpu().numpy()
        return {
            name: series.reshape((batch * period, *plan.populations[name].lava_shape))
            for name, series in raw.items()
        }

    def run_block(
        self, block: Block, outputs: dict[str, Series], batch: int
    ) -> tuple[dict[str, Series], dict[str, torch.Tensor]]:
        """Run one block over its steps: the spikes of its populations, and the recorded values
        (steps, batch, neurons) of those recorded."""
        fixed = self.job.fixed is not None
        members = block.populations
        width = block.last - block.first + 1
        incoming: dict[str, list[int]] = {name: [] for name in members}  # in plan order
        for index, syn in enumerate(self.synapses):
            if syn.target in members:
                incoming[syn.target].append(index)
        external, summed, dtypes = self.block_inputs(block, incoming, outputs, batch)
        pops = {name: self.populations[name] for name in members}
        kinds = self.job.populations
        device = self.device
        v = {
            name: torch.zeros((batch, pops[name].size), dtype=dtypes[name], device=device)
            for name in members
        }
        u = {
            name: None if pops[name].forgets_current else torch.zeros_like(v[name])
            for name in members
        }
        # Allocated when a population first fires: most of an untrained network never does.
        spikes: dict[str, torch.Tensor | None] = dict.fromkeys(members)
        fired_on = {name: [-1] * width for name in members}
        voltages = {
            name: v[name].new_zeros((width, batch, pops[name].size))
            for name in members
            if kinds.get(name) == "v"
        }
        # Synapses inside a cycle: the values they deliver on coming steps (0: the next step).
        pending = {
            index: [v[syn.target].new_zeros(v[syn.target].shape) for _ in range(syn.delay)]
            for index, syn in enumerate(self.synapses)
            if syn.target in members and syn.source in members
        }
        resting = dict.fromkeys(members, True)  # u and v all zero: silence keeps them so
        for offset, step in enumerate(range(block.first, block.last + 1)):
            delivered = {index: queue.pop(0) for index, queue in pending.items()}
            for name in members:
                pop = pops[name]
                if step == pop.depth + 1:  # LIFReset: NIR step 0 arrives, state from zero
                    if u[name] is not None:
                        u[name].zero_()
                    v[name].zero_()
                    resting[name] = True
                if name in summed:
                    series = summed[name]
                    silent = series.pattern[offset] < 0
                    a_in = series.values[offset]
                elif incoming[name]:
                    a_in = v[name].new_zeros(v[name].shape)
                    for index in incoming[name]:
                        if index in external:
                            a_in = a_in + external[index].values[offset]
                        else:
                            a_in = a_in + delivered[index]
                    if fixed:
                        self.check_input(name, a_in)
                    silent = False
                else:
                    a_in, silent = None, True
                if silent and resting[name] and pop.rests:
                    continue  # nothing moves: no spikes, u and v stay zero
                resting[name] = False
                lif = fixed_lif if fixed else float_lif
                if lif(pop, u[name], v[name], a_in):
                    if spikes[name] is None:  # steps left unwritten are zeroed after the loop
                        shape = (width, batch, pop.size)
                        spikes[name] = v[name].new_empty(shape, dtype=torch.float32)
                    fire(v[name], pop.vth, spikes[name][offset])
                    fired_on[name][offset] = offset
                if name in voltages:
                    voltages[name][offset] = v[name]
            for index in pending:
                syn = self.synapses[index]
                if fired_on[syn.source][offset] < 0:  # silent on this step: it delivers zeros
                    pending[index].append(v[syn.target].new_zeros(v[syn.target].shape))
                    continue
                source = spikes[syn.source][offset : offset + 1]
                pending[index].append(self.transmit(syn, Series(source, step, [0])).values[0])
        for name, held in spikes.items():
            silent_steps = [offset for offset, fired in enumerate(fired_on[name]) if fired < 0]
            if held is not None and silent_steps:
                held[silent_steps] = 0.0
        series = {
            name: Series(spikes[name], block.first, fired_on[name])
            if spikes[name] is not None
            else Series.silent(pops[name].size, width, batch, block.first, torch.float32, device)
            for name in members
        }
        recorded = {
            name: voltages[name] if kinds[name] == "v" else series[name].values
            for name in members
            if name in kinds
        }
        return series, recorded

    def block_inputs(
        self,
        block: Block,
        incoming: dict[str, list[int]],
        outputs: dict[str, Series],
        batch: int,
    ) -> tuple[dict[int, Series], dict[str, Series], dict[str, torch.dtype]]:
        """What synapses from earlier blocks deliver over the block's window, each product over
        every step at once: per synapse into a population that a synapse inside the block also
        feeds, else summed per population in plan order (Lava's order of float roundings); and
        each population's state dtype, float32 in fixed point where float32_room allows."""
        fixed, members = self.job.fixed is not None, block.populations
        external: dict[int, Series] = {}
        summed: dict[str, Series] = {}
        dtypes = dict.fromkeys(members, torch.float64)
        for name in members:
            pop = self.populations[name]
            inside = any(self.synapses[i].source in members for i in incoming[name])
            parts = []
            for index in incoming[name]:
                syn = self.synapses[index]
                if syn.source not in members:
                    part = self.delivered(syn, outputs[syn.source], block, batch)
                    if inside:
                        external[index] = part
                    else:
                        parts.append(part)
            if inside:
                continue  # v in float64
            # Fixed-point integer sums below 2**24 add exactly in float32.
            largest = self.input_bound[name]
            exact32 = fixed and largest < EXACT_FLOAT32
            if parts:
                series = add_series(parts, torch.float32 if exact32 else torch.float64)
                wide = largest > INT32_MAX >> ACTIVATION_SHIFT
                if fixed and (wide or (pop.forgets_current and pop.checks_current)):
                    distinct, values = series.distinct()
                    if distinct:
                        largest = self.check_input(name, values)
            if largest < pop.float32_below:  # never in float (float32_below 0)
                dtypes[name] = torch.float32
            if parts:
                # In v's dtype: exact, float32 values being integers below 2**24.
                summed[name] = Series(series.values.to(dtypes[name]), series.first, series.pattern)
        return external, summed, dtypes

    def delivered(self, syn: EmulatedSynapse, source: Series, block: Block, batch: int) -> Series:
        """What a synapse from an earlier block delivers on each step of the block: its
        products of the source's values `delay` steps before."""
        width = block.last - block.first + 1
        lo, hi = max(block.first - syn.delay, 1), block.last - syn.delay
        before, after = lo + syn.delay - block.first, block.last - hi - syn.delay
        if hi < lo:
            size = self.populations[syn.target].size
            return Series.silent(size, width, batch, block.first, self.values_dtype, self.device)
        sent = self.transmit(syn, source.steps(lo, hi))
        if before or after:
            sent = sent.padded(before, after)
        return sent

    def transmit(self, syn: EmulatedSynapse, source: Series) -> Series:
        """What the synapse buffers for its source's values: (steps, batch, N_out) sums (in
        float32 where exact, see emulator_products).
        Silent steps cost nothing, and steps equal to an earlier one (a direct-coded input)
        are computed once."""
        steps, (_, batch, size_in) = len(source.pattern), source.values.shape
        size_out = self.populations[syn.target].size
        distinct, held = source.distinct()
        if not distinct:
            device = source.values.device
            return Series.silent(size_out, steps, batch, source.first, self.values_dtype, device)
        columns = held.reshape(len(distinct) * batch, size_in)
        summed = syn.matrix @ columns
        if self.job.fixed is not None:
            summed = self.fixed_sums(syn, summed)
        summed = summed.reshape(len(distinct), batch, size_out)
        if len(distinct) == steps:
            return Series(summed, source.first, source.pattern)
        if len(distinct) == 1 and min(source.pattern) >= 0:
            return Series(summed.expand(steps, -1, -1), source.first, source.pattern)
        column = {step: number for number, step in enumerate(distinct)}
        result = summed.new_empty((steps, batch, size_out))
        for step, index in enumerate(source.pattern):
            if index >= 0:
                result[step] = summed[column[index]]
            else:
                result[step] = 0.0
        return Series(result, source.first, source.pattern)

    def fixed_sums(self, syn: EmulatedSynapse, summed: torch.Tensor) -> torch.Tensor:
        """A fixed-point synapse's integer sums as Lava delivers them: a Conv's 24-bit output,
        or the int32 sum shifted by the weight exponent (MksgnError where Lava would wrap; the
        checks run only where the synapse's bound does not already rule that out)."""
        bound, exp = syn.largest_sum, syn.weight_exp
        # Only a bound of 2**23 or more leaves the 24-bit or int32 checks below to do.
        largest = largest_magnitude(summed) if bound >= GRADED_MAX else 0.0
        if syn.lava_conv:
            # Lava's Conv wraps its output to 24 bits; reaching that is an overflow.
            if largest >= GRADED_MAX:
                overflow(syn.target, f"Conv synapse '{syn.name}' overflows 24 bits")
            return summed
        if syn.graded and largest > INT32_MAX:
            # Lava's graded int32 dot product wraps; a spike sum is int64 until the shift.
            overflow(syn.target, f"synapse '{syn.name}' overflows its int32 sum")
        # In place: every product returns a tensor of its own.
        if exp > 0:
            summed.mul_(float(1 << exp))
        elif exp < 0:
            summed.mul_(1.0 / (1 << -exp)).floor_()  # an arithmetic right shift
        if bound * 2.0**exp > INT32_MAX and largest_magnitude(summed) > INT32_MAX:
            overflow(syn.target, f"synapse '{syn.name}' overflows int32 after its exponent")
        return summed

    def check_input(self, name: str, a_in: torch.Tensor) -> float:
        """The largest |a_in| of a population's summed input; MksgnError where it overflows
        int32 once shifted by 6, or, where it is the population's whole current u, wraps u's
        24 bits."""
        largest = largest_magnitude(a_in)
        if largest > INT32_MAX >> ACTIVATION_SHIFT:
            overflow(name, "its summed synaptic input overflows int32 after << 6")
        if (
            self.populations[name].forgets_current
            and largest * (1 << ACTIVATION_SHIFT) >= STATE_LIMIT
        ):
            overflow(name, "its current u wrapped around 24 bits")
        return largest
