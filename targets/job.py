"""A validated run of a lowered plan on samples, shared by every executor of a LavaPlan (the Lava
process graph in targets/lava.py, the emulator in targets/emulator.py): input checks, fixed-point
parameters chosen once from all inputs, the input stream in Lava's layout, batching samples side
by side, and the alignment of recorded series back to NIR steps. Imports nothing of Lava."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from mksgn.convert.lava_plan import LavaPlan, from_lava, lava_shape, to_lava
from mksgn.errors import MksgnError
from mksgn.targets.base import RunResult

if TYPE_CHECKING:
    from mksgn.convert.fixed_point import FixedPlan


@dataclasses.dataclass
class LavaJob:
    """A validated run of a plan on samples, shared by every executor of a LavaPlan (Lava's
    process graph, the emulator): the fixed-point parameters (chosen once from all inputs), the
    input in Lava's layout, and the alignment of the recorded series back to NIR steps."""

    plan: LavaPlan
    fixed: FixedPlan | None
    inputs: np.ndarray  # (samples, T, *input NIR shape); any real dtype, read per batch
    nodes: tuple[str, ...]  # NIR nodes to record

    @property
    def samples(self) -> int:
        """Number of samples."""
        return int(self.inputs.shape[0])

    @property
    def steps(self) -> int:
        """NIR time steps per sample."""
        return int(self.inputs.shape[1])

    @property
    def period(self) -> int:
        """Simulator steps per sample: T plus the pipeline depth."""
        return self.steps + self.plan.depth

    @property
    def populations(self) -> dict[str, str]:
        """Recorded population -> "spikes" or "v"."""
        return {self.plan.records[n][0]: self.plan.records[n][1] for n in self.nodes}

    def stream_data(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) as the source sends them: (*Lava input shape, time), sample s
        on steps [s·period, (s+1)·period) with zeros after its T steps; integers in fixed point."""
        count, nir_shape = stop - start, self.plan.input_nir_shape
        sent = self.sample_steps(start, stop)
        data = np.zeros((count, self.period, sent.shape[2]), dtype=sent.dtype)
        data[:, : self.steps] = sent.transpose(1, 0, 2)
        data = data.reshape((count * self.period, *lava_shape(nir_shape)))
        return np.ascontiguousarray(np.moveaxis(data, 0, -1))

    def sample_steps(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop)'s T input steps, time first: (T, samples, input neurons in
        Lava's flat order); integers in fixed point."""
        plan, count = self.plan, stop - start
        values = np.asarray(self.inputs[start:stop])
        if self.fixed is not None:
            from mksgn.convert.fixed_point import quantize_input

            values = quantize_input(values, self.fixed.input_shift)
        else:
            values = values.astype(np.float64, copy=False)
        steps_first = values.swapaxes(0, 1).reshape((self.steps * count, *plan.input_nir_shape))
        return to_lava(steps_first, plan.input_nir_shape).reshape(self.steps, count, -1)

    def align(self, raw: dict[str, np.ndarray], samples: int) -> dict[str, np.ndarray]:
        """Recorded node -> (samples, T, *NIR shape) from raw series (samples·period, *Lava shape)
        per population: the pipeline depth removed, fixed-point voltages in float units."""
        recorded = {}
        for node in self.nodes:
            population, kind = self.plan.records[node]
            pop = self.plan.populations[population]
            series = raw[population]
            index = (
                np.arange(samples)[:, None] * self.period + pop.depth + np.arange(self.steps)
            ).ravel()
            values = from_lava(series[index], pop.nir_shape).astype(np.float64)
            if self.fixed is not None and kind == "v":
                values = values / self.fixed.populations[population].scale
            recorded[node] = values.reshape((samples, self.steps, *pop.nir_shape))
        return recorded

    def result(
        self, backend: str, recorded: dict[str, np.ndarray], wall_s: float, extra: dict
    ) -> RunResult:
        """The RunResult of this job."""
        extra = {"pipeline_depth": self.plan.depth, **extra}
        if self.fixed is not None:
            extra["quantisation"] = self.fixed.report()
        return RunResult(
            backend=backend,
            recorded=recorded,
            time_steps=self.steps,
            steps_per_sample=self.period,
            wall_s_per_sample=wall_s / max(self.samples, 1),
            extra=extra,
        )


def side_by_side(data: np.ndarray, samples: int, period: int, batch: int) -> np.ndarray:
    """A stream of samples one after another, (*shape, samples · period), as a batched network's
    input: (batch · size, groups · period), sample g·batch + b in block b during group g's
    steps; a last group that is not full is padded with silent samples."""
    groups = -(-samples // batch)
    size = int(np.prod(data.shape[:-1]))
    padded = np.zeros((size, groups * batch, period), dtype=data.dtype)
    padded[:, :samples] = data.reshape(size, samples, period)
    padded = padded.reshape(size, groups, batch, period).transpose(2, 0, 1, 3)
    return padded.reshape(batch * size, groups * period)


def one_after_another(
    series: np.ndarray, samples: int, period: int, batch: int, lava_shape: tuple[int, ...]
) -> np.ndarray:
    """The inverse of side_by_side for a recorded series (groups · period, batch · size):
    (samples · period, *lava_shape), as the population of an unbatched network records it."""
    groups = -(-samples // batch)
    size = int(np.prod(lava_shape))
    series = series.reshape(groups, period, batch, size).transpose(0, 2, 1, 3)
    series = series.reshape(groups * batch * period, size)[: samples * period]
    return series.reshape((samples * period, *lava_shape))


def input_abs_max(inputs: np.ndarray) -> float:
    """max |x| over all inputs, in chunks of samples (a direct-coded set is a broadcast view
    that would take T times its memory as one array); MksgnError on NaN or infinity."""
    largest = 0.0
    chunk = max(1, (1 << 24) // max(1, int(np.prod(inputs.shape[1:]))))
    for start in range(0, len(inputs), chunk):
        part = np.asarray(inputs[start : start + chunk], dtype=np.float64)
        if not np.all(np.isfinite(part)):
            raise MksgnError("input contains NaN or infinite values")
        largest = max(largest, float(np.abs(part).max(initial=0.0)))
    return largest


def prepare_job(
    plan: LavaPlan,
    inputs: np.ndarray,
    record: tuple[str, ...],
    fixed_point: bool,
    abs_max: float | None = None,
    fixed: FixedPlan | None = None,
) -> LavaJob:
    """Check the inputs and the recorded nodes against the plan; in fixed point, run `fixed` (the
    parameters an artifact stores) or quantise for inputs up to `abs_max` (None: the largest |x|
    of these inputs)."""
    inputs = np.asarray(inputs)
    expected = plan.input_nir_shape
    if inputs.ndim != 2 + len(expected) or tuple(inputs.shape[2:]) != tuple(expected):
        raise MksgnError(
            f"input shaped {inputs.shape} does not fit the graph's Input '{plan.input_name}': "
            f"expected (samples, time steps, {', '.join(map(str, expected))})"
        )
    if inputs.dtype.kind not in "biuf":
        raise MksgnError(f"input holds {inputs.dtype} values; it needs real numbers")
    largest = input_abs_max(inputs)
    if abs_max is not None:
        if not (np.isfinite(abs_max) and abs_max >= largest):
            raise MksgnError(
                f"the given input range {abs_max} does not cover these inputs (max |x| {largest})"
            )
        largest = float(abs_max)
    nodes = tuple(dict.fromkeys(tuple(plan.outputs) + tuple(record)))
    for node in nodes:
        if node not in plan.records:
            raise MksgnError(
                f"cannot record node '{node}': record a neuron or an Output node "
                f"(available: {', '.join(sorted(plan.records))})"
            )
    if fixed_point and fixed is not None:
        if largest > fixed.input_abs_max:
            raise MksgnError(
                f"the inputs reach |x| = {largest:g}, beyond the ±{fixed.input_abs_max:g} the "
                "stored fixed-point parameters were quantised for; run 'mksgn convert "
                "--fixed-point --calibrate DATA' with data that covers these inputs"
            )
    elif fixed_point:
        from mksgn.convert.fixed_point import quantize_plan

        fixed = quantize_plan(plan, largest)
    else:
        fixed = None
    return LavaJob(plan, fixed, inputs, nodes)
