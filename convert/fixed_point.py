"""Loihi 2-style fixed-point quantisation of a Lava plan: integer weights, decays, thresholds, biases.

Per population a voltage scale S maps float voltages to Lava's fixed-point units (v_fixed = S·v).
Lava fixed point adds `a_in << 6` to the current and compares `v` with `vth << 6`, so a float
weight w becomes the integer S·w/64 = mantissa · 2**weight_exp with an 8-bit mantissa (Lava keeps
mixed-sign weights as even numbers in [-256, 254]); Lava's Conv ignores weight_exp, so weights of a
conv kept as a Lava Conv use exponent 0, while a conv lowered to a Lava Sparse matrix gets one like a
Dense (Sparse's fixed-point model clips, truncates and shifts exactly as Dense's does). Decays are 12-bit (u decays by (du+1)/4096, v by dv/4096), thresholds 17-bit,
bias = mantissa(13-bit signed) << bias_exp (0..7), state 24-bit. Everything here is Python/NumPy
integers; a value that does not fit raises MksgnError naming the layer.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from mksgn.convert.lava_plan import BIAS_SOURCE, LavaPlan, input_bound, max_row_sum
from mksgn.convert.loihi2 import (
    ACCUMULATOR_MAX,
    ACTIVATION_SHIFT,
    BIAS_EXP_MAX,
    BIAS_MANT_MAX,
    DECAY_UNITY,
    INPUT_MAX,
    STATE_MAX,
    VTH_MAX,
    WEIGHT_EXP_MAX,
    WEIGHT_EXP_MIN,
    WEIGHT_MAX,
    WEIGHT_MIN,
)
from mksgn.errors import MksgnError

# Mean relative weight error above which a synapse gets a residual synapse. Measured on a trained
# MK-SGN: SA-SGC layers 0.94 (test accuracy float 81.3 %, fixed 78.8 %; with residuals 80.6 %),
# every other layer below 0.07.
RESIDUAL_ABOVE = 0.25
STATE_HEADROOM = 0.5  # keep the bound on |u|, |v| below half the 24-bit range


@dataclasses.dataclass
class FixedPopulation:
    """Integer LIF parameters of one population."""

    name: str
    scale: float  # v_fixed = scale · v_float
    du: int
    dv: int
    vth: int
    bias_mant: np.ndarray
    bias_exp: int

    def lava_params(self) -> dict[str, object]:
        """Keyword arguments for Lava's LIF/LIFReset; MksgnError unless all are integers."""
        params = dict(
            du=self.du, dv=self.dv, vth=self.vth, bias_mant=self.bias_mant, bias_exp=self.bias_exp
        )
        for key, value in params.items():
            if not np.issubdtype(np.asarray(value).dtype, np.integer):
                raise MksgnError(
                    f"layer '{self.name}': fixed-point parameter {key}={value!r} is not an "
                    "integer; Lava's fixed-point LIF would fail silently"
                )
        return params


@dataclasses.dataclass
class FixedSynapse:
    """Integer weights of one synapse: effective weight = weight · 2**weight_exp, plus, where
    8 bits lose too much, residual · 2**residual_exp run as a second Lava synapse beside it."""

    name: str
    weight: np.ndarray  # int32
    weight_exp: int
    max_error_of_peak: float  # largest |error| over the largest |weight|
    mean_error_per_weight: float  # mean of |error| / |weight| over non-zero weights
    residual: np.ndarray | None = None  # int32, same layout as weight
    residual_exp: int = 0


@dataclasses.dataclass
class FixedPlan:
    """Integer parameters for every population and synapse of a plan, and the input scaling."""

    populations: dict[str, FixedPopulation]
    synapses: list[FixedSynapse]
    input_shift: int  # input integers = round(x · 2**input_shift)
    input_abs_max: float = 1.0  # the input range it was quantised for (larger inputs clip)

    def report(self) -> dict[str, dict[str, object]]:
        """Per-layer quantisation summary (JSON-able)."""
        out: dict[str, dict[str, object]] = {}
        for syn in self.synapses:
            out[syn.name] = dict(
                weight_exp=syn.weight_exp,
                residual_exp=None if syn.residual is None else syn.residual_exp,
                max_error_of_peak_weight=syn.max_error_of_peak,
                mean_error_per_weight=syn.mean_error_per_weight,
            )
        for pop in self.populations.values():
            out[pop.name] = dict(
                scale=pop.scale, du=pop.du, dv=pop.dv, vth=pop.vth, bias_exp=pop.bias_exp
            )
        return out


def quantize_decay(value: float, offset: int, what: str, layer: str) -> int:
    """A decay in [0, 1] as the 12-bit integer Lava expects (effective = (d + offset)/4096)."""
    integer = round(value * DECAY_UNITY) - offset
    integer = min(max(integer, 0), DECAY_UNITY - 1)
    if abs((integer + offset) / DECAY_UNITY - value) > 1.0 / DECAY_UNITY + 1e-12:
        raise MksgnError(f"layer '{layer}': {what}={value:g} is not representable in 12 bits")
    return int(integer)


def sum_preserving_round(values: np.ndarray) -> np.ndarray:
    """Round each row (first axis: one target neuron or output channel) to integers whose sum
    is the row's rounded sum, rounding up the entries with the largest remainders.

    Round-to-nearest drops every weight below half a step: in a folded SA-SGC layer that was
    94 % of the weights and 4-9 % of each row's mass, always in the same direction, and deeper
    layers drifted by 3-6 % in spike count. Each entry still moves by less than one step."""
    rows = values.reshape(values.shape[0], -1) if values.ndim > 1 else values.reshape(-1, 1)
    floor = np.floor(rows)
    remainder = rows - floor
    deficit = np.round(remainder.sum(axis=1)).astype(np.int64)
    rank = np.argsort(np.argsort(-remainder, axis=1, kind="stable"), axis=1, kind="stable")
    rounded = floor + (rank < deficit[:, None])
    return rounded.reshape(values.shape)


def quantize_weights(
    weight: np.ndarray, exp_fixed: bool, layer: str
) -> tuple[np.ndarray, int, float, float]:
    """Integer weights (even, in [-256, 254]) and exponent for effective weights `weight`."""
    peak = float(np.abs(weight).max(initial=0.0))
    exp = 0
    if peak > 0 and not exp_fixed:
        # A negative exponent right-shifts the accumulated sum: small weights keep all 8 bits.
        exp = math.ceil(math.log2(peak / WEIGHT_MAX))
        if exp > WEIGHT_EXP_MAX:
            raise MksgnError(
                f"layer '{layer}': weights reach {peak:.4g} fixed-point units, beyond 8 bits "
                f"<< {WEIGHT_EXP_MAX}; lower the layer's threshold-to-weight ratio"
            )
        exp = max(exp, WEIGHT_EXP_MIN)
    integer = 2 * sum_preserving_round(weight / 2.0**exp / 2.0)
    if integer.max(initial=0) > WEIGHT_MAX or integer.min(initial=0) < WEIGHT_MIN:
        raise MksgnError(
            f"layer '{layer}': weights reach {peak:.4g} fixed-point units, beyond the 8-bit "
            f"range [{WEIGHT_MIN}, {WEIGHT_MAX}] (a Lava Conv has no weight exponent)"
        )
    rel_max, rel_mean = weight_errors(weight, integer * 2.0**exp)
    return integer.astype(np.int32), int(exp), rel_max, rel_mean


def weight_errors(weight: np.ndarray, effective: np.ndarray) -> tuple[float, float]:
    """Largest error relative to the largest weight, and mean error relative to each weight."""
    peak = float(np.abs(weight).max(initial=0.0))
    error = np.abs(effective - weight)
    rel_max = float(error.max(initial=0.0) / peak) if peak else 0.0
    nonzero = np.abs(weight) > 0
    rel_mean = float((error[nonzero] / np.abs(weight[nonzero])).mean()) if nonzero.any() else 0.0
    return rel_max, rel_mean


def exponent_fixed(lava_process: str, weight_exponents: bool) -> bool:
    """Whether a synapse's weight exponent must stay 0 (Lava Conv has none; netx stores none)."""
    return lava_process == "Conv" or not weight_exponents


def quantize_plan(
    plan: LavaPlan,
    input_abs_max: float = 1.0,
    weight_exponents: bool = True,
    residual_synapses: bool = True,
) -> FixedPlan:
    """Choose per-population scales and integer parameters for every layer of `plan`.

    weight_exponents=False keeps every weight exponent at 0 (what lava-dl netx files hold).
    residual_synapses adds a second synapse, with a finer exponent, to every synapse whose 8-bit
    weights are off by more than RESIDUAL_ABOVE on average (a folded SA-SGC layer: attention
    spreads small weights over every pair of joints next to the large graph-edge weights)."""
    input_abs_max = float(input_abs_max) or 1.0
    input_bound(plan, input_abs_max)
    incoming: dict[str, list[int]] = {name: [] for name in plan.populations}
    for index, syn in enumerate(plan.synapses):
        incoming[syn.target].append(index)

    scales: dict[str, float] = {}
    for name, pop in plan.populations.items():
        bias_peak = float(np.abs(pop.bias).max(initial=0.0))
        u_bound = pop.max_abs_input / pop.du
        constant_drive = any(
            plan.populations[plan.synapses[i].source].nir_type == BIAS_SOURCE
            for i in incoming[name]
            if plan.synapses[i].source in plan.populations
        )
        if pop.spiking and not constant_drive:
            # Above, a spike resets v at the threshold; below, nothing does: a steady negative
            # input settles v at u/dv (10 x u for a leak of 0.1, which wrapped lava-fixed's v).
            negative_bias = float(np.maximum(-pop.bias, 0).max(initial=0.0))
            # Without a leak (dv = 0, IF) v has no floor at all; the range stays the one above.
            v_low = (pop.max_negative_input / pop.du + negative_bias) / pop.dv if pop.dv else 0.0
            v_bound = max(pop.vth + u_bound + bias_peak, v_low)
        else:  # nothing bounds v from below: a steady (negative) current settles at u/dv
            v_bound = (u_bound + bias_peak) / max(pop.dv, 1e-3) + (pop.vth if pop.spiking else 0)
        limits = [STATE_MAX * STATE_HEADROOM / max(v_bound, u_bound, 1e-30)]
        if pop.spiking:
            if pop.vth <= 0:
                raise MksgnError(f"layer '{name}': threshold {pop.vth:g} must be positive")
            limits.append(2**ACTIVATION_SHIFT * VTH_MAX / pop.vth)
        if bias_peak > 0:
            limits.append(BIAS_MANT_MAX * 2**BIAS_EXP_MAX / bias_peak)
        for index in incoming[name]:
            syn = plan.synapses[index]
            peak = float(np.abs(syn.weight).max(initial=0.0))
            if peak == 0 or syn.graded:  # the input shift absorbs a graded synapse's range
                continue
            largest_exp = (
                0 if exponent_fixed(syn.lava_process, weight_exponents) else WEIGHT_EXP_MAX
            )
            limits.append(2**ACTIVATION_SHIFT * WEIGHT_MAX * 2**largest_exp / peak)
        scales[name] = min(limits)

    input_shift = choose_input_shift(plan, scales, input_abs_max, weight_exponents)

    synapses = []
    for syn in plan.synapses:
        factor = scales[syn.target] / 2**ACTIVATION_SHIFT
        if syn.graded:
            factor /= 2.0**input_shift
        target = syn.weight * factor
        integer, exp, rel_max, rel_mean = quantize_weights(
            target, exponent_fixed(syn.lava_process, weight_exponents), syn.name
        )
        fixed_syn = FixedSynapse(syn.name, integer, exp, rel_max, rel_mean)
        if (
            residual_synapses
            and rel_mean > RESIDUAL_ABOVE
            and not exponent_fixed(syn.lava_process, weight_exponents)
            and not syn.graded  # the input shift already gives graded weights the finest exponent
            and syn.extra_hops == 0
            and not syn.back_edge
        ):
            remainder = target - integer * 2.0**exp
            residual, residual_exp, *_ = quantize_weights(remainder, False, syn.name)
            if residual.any():
                effective = integer * 2.0**exp + residual * 2.0**residual_exp
                fixed_syn.residual, fixed_syn.residual_exp = residual, residual_exp
                errors = weight_errors(target, effective)
                fixed_syn.max_error_of_peak, fixed_syn.mean_error_per_weight = errors
        synapses.append(fixed_syn)

    populations = {}
    for name, pop in plan.populations.items():
        scale = scales[name]
        bias = pop.bias * scale
        peak = float(np.abs(bias).max(initial=0.0))
        bias_exp = max(0, math.ceil(math.log2(peak / BIAS_MANT_MAX))) if peak > 0 else 0
        if bias_exp > BIAS_EXP_MAX:
            raise MksgnError(
                f"layer '{name}': bias {peak:.4g} fixed-point units exceeds 4095 << 7; "
                "the layer's bias is too large relative to its threshold"
            )
        vth = round(pop.vth * scale / 2**ACTIVATION_SHIFT) if pop.spiking else VTH_MAX
        if pop.spiking and not 1 <= vth <= VTH_MAX:
            raise MksgnError(
                f"layer '{name}': threshold {pop.vth:g} becomes {vth} at the largest scale its "
                "bias and weights allow in 24-bit state, 13-bit bias and 8-bit weights; the "
                "threshold is too small relative to them (it must be 1..131071)"
            )
        populations[name] = FixedPopulation(
            name=name,
            scale=scale,
            du=quantize_decay(pop.du, 1, "du", name),
            dv=quantize_decay(pop.dv, 0, "dv", name),
            vth=int(vth),
            bias_mant=np.round(bias / 2.0**bias_exp).astype(np.int32),
            bias_exp=int(bias_exp),
        )
    return FixedPlan(populations, synapses, int(input_shift), input_abs_max)


def save_fixed_plan(fixed: FixedPlan, path: Path) -> None:
    """Every integer of `fixed` in one .npz (no pickles), so a run executes exactly these."""
    arrays: dict[str, np.ndarray] = {
        "input_shift": np.array(fixed.input_shift),
        "input_abs_max": np.array(fixed.input_abs_max),
        "population_names": np.array(list(fixed.populations), dtype=str),
        "synapse_names": np.array([syn.name for syn in fixed.synapses], dtype=str),
    }
    for index, pop in enumerate(fixed.populations.values()):
        arrays[f"pop{index}.params"] = np.array([pop.du, pop.dv, pop.vth, pop.bias_exp])
        arrays[f"pop{index}.scale"] = np.array(pop.scale)
        arrays[f"pop{index}.bias_mant"] = np.asarray(pop.bias_mant)
    for index, syn in enumerate(fixed.synapses):
        arrays[f"syn{index}.weight"] = syn.weight
        arrays[f"syn{index}.params"] = np.array([syn.weight_exp, syn.residual_exp])
        arrays[f"syn{index}.errors"] = np.array([syn.max_error_of_peak, syn.mean_error_per_weight])
        if syn.residual is not None:
            arrays[f"syn{index}.residual"] = syn.residual
    with path.open("wb") as handle:
        np.savez(handle, **arrays)


def load_fixed_plan(path: Path) -> FixedPlan:
    """The FixedPlan save_fixed_plan wrote; MksgnError if the file is not one."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        populations = {}
        for index, name in enumerate(arrays["population_names"].tolist()):
            du, dv, vth, bias_exp = (int(v) for v in arrays[f"pop{index}.params"])
            scale = float(arrays[f"pop{index}.scale"])
            bias_mant = arrays[f"pop{index}.bias_mant"]
            populations[name] = FixedPopulation(name, scale, du, dv, vth, bias_mant, bias_exp)
        synapses = []
        for index, name in enumerate(arrays["synapse_names"].tolist()):
            weight_exp, residual_exp = (int(v) for v in arrays[f"syn{index}.params"])
            peak_error, mean_error = (float(v) for v in arrays[f"syn{index}.errors"])
            synapses.append(
                FixedSynapse(
                    name,
                    arrays[f"syn{index}.weight"],
                    weight_exp,
                    peak_error,
                    mean_error,
                    arrays.get(f"syn{index}.residual"),
                    residual_exp,
                )
            )
        shift, abs_max = int(arrays["input_shift"]), float(arrays["input_abs_max"])
    except (OSError, ValueError, KeyError, EOFError) as error:
        raise MksgnError(f"{path} is not a fixed-point parameter file ({error})") from None
    return FixedPlan(populations, synapses, shift, abs_max)


def check_matches(fixed: FixedPlan, plan: LavaPlan, where: str) -> None:
    """MksgnError unless `fixed` holds parameters for exactly the layers and shapes of `plan`."""
    names = [syn.name for syn in plan.synapses]
    stored = [syn.name for syn in fixed.synapses]
    problem = None
    if stored != names or set(fixed.populations) != set(plan.populations):
        problem = "its layers differ from the graph's"
    else:
        for syn, fixed_syn in zip(plan.synapses, fixed.synapses, strict=True):
            if fixed_syn.weight.shape != syn.weight.shape:
                problem = (
                    f"layer '{syn.name}' is shaped {fixed_syn.weight.shape}, not {syn.weight.shape}"
                )
                break
    if problem:
        raise MksgnError(
            f"{where}: the stored fixed-point parameters do not fit the stored graph ({problem}); "
            "run 'mksgn convert --fixed-point' again"
        )


def choose_input_shift(
    plan: LavaPlan, scales: dict[str, float], input_abs_max: float, weight_exponents: bool
) -> int:
    """The k of input integers round(x·2**k): as many input bits as the graded synapses allow.

    A graded synapse carries S·w/(64·2**k). With weight exponents, every extra bit of k moves
    into a more negative exponent (a right shift after Lava's int32 accumulation), so k grows
    while the exponent stays >= -8 and the accumulated sum cannot overflow int32. Without them
    (Lava Conv, netx) the weights must fit 8 bits at exponent 0: the smallest such k."""
    graded = [syn for syn in plan.synapses if syn.graded and np.abs(syn.weight).max(initial=0)]
    ceiling = math.floor(math.log2(INPUT_MAX / input_abs_max))
    if not graded:
        return min(0, ceiling)
    effective = {id(syn): syn.weight * scales[syn.target] / 2**ACTIVATION_SHIFT for syn in graded}
    peaks = {key: float(np.abs(weight).max()) for key, weight in effective.items()}
    smallest = max(math.ceil(math.log2(peak / WEIGHT_MAX)) for peak in peaks.values())
    if any(exponent_fixed(syn.lava_process, weight_exponents) for syn in graded):
        return min(smallest, ceiling)
    for shift in range(ceiling, smallest, -1):
        fits = True
        for syn in graded:
            weight = effective[id(syn)] / 2.0**shift
            if math.ceil(math.log2(peaks[id(syn)] / 2.0**shift / WEIGHT_MAX)) < WEIGHT_EXP_MIN:
                fits = False  # the mantissa would lose bits below the smallest exponent
                break
            integer, *_ = quantize_weights(weight, False, syn.name)
            if max_row_sum(syn, integer) * 2.0**shift * input_abs_max > ACCUMULATOR_MAX:
                fits = False
                break
        if fits:
            return shift
    return min(smallest, ceiling)


def quantize_input(data: np.ndarray, input_shift: int) -> np.ndarray:
    """Graded input values as the integers the fixed-point RingBuffer sends."""
    values = np.asarray(data)
    # float32 data scaled by a power of two stays exact in float32 (results past INPUT_MAX are
    # refused below), and rounds as in float64: 10x faster than converting first.
    if values.dtype != np.float32:
        values = values.astype(np.float64)
    scaled = np.round(values * values.dtype.type(2.0**input_shift))
    if max(-scaled.min(initial=0), scaled.max(initial=0)) > INPUT_MAX:
        raise MksgnError(
            f"input values up to {np.abs(data).max():.4g} overflow the 24-bit fixed-point input "
            f"at scale 2**{input_shift}"
        )
    return scaled.astype(np.int32)


def check_state(values: np.ndarray, layer: str) -> None:
    """Raise if a recorded fixed-point state reached the 24-bit limit (it saturated)."""
    if values.size and np.abs(values).max() >= STATE_MAX:
        raise MksgnError(
            f"layer '{layer}': fixed-point state overflowed 24 bits; scale the layer's weights "
            "down or lower its threshold"
        )
