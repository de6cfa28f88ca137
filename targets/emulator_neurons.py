"""The emulator's neurons (targets/emulator.py): a LIFReset population's parameters and one step
of its update, in place on a batch of states, as Lava's PyLifResetModelFloat (float64) or
PyLifResetModelBitAcc (exact integers carried in float64, or in float32 where a bound keeps
them below 2**24) compute it."""

from __future__ import annotations

import dataclasses

import torch

from mksgn.convert.loihi2 import ACTIVATION_SHIFT, DECAY_UNITY, STATE_LIMIT
from mksgn.errors import MksgnError

EXACT_FLOAT32 = 2**24  # integers up to this add exactly in float32


@dataclasses.dataclass
class EmulatedPopulation:
    """One LIFReset population's parameters (integers in fixed point)."""

    name: str
    size: int
    depth: int
    du: float | int
    dv: float | int
    vth: float | int  # fixed point: already shifted (vth << 6)
    bias: torch.Tensor | None  # (1, size), None if all zero; fixed point: bias_mant << bias_exp
    rests: bool  # no bias and a threshold above 0: without input it stays at u = v = 0
    # u keeps nothing from one step to the next (snnTorch's Leaky: du = 1, fixed point 4095):
    # u is the step's input, so the update adds the input to v directly and never stores u.
    forgets_current: bool = False
    # Fixed point: the input bound cannot prove |u| below 24 bits, so every step checks it.
    checks_current: bool = True
    # Fixed point: v runs in float32 on blocks whose |a_in| stays below this (0: never), where
    # every value it takes before the 24-bit check is an integer below 2**24 (see float32_room).
    float32_below: float = 0.0
    bias32: torch.Tensor | None = None  # the bias in float32, for v in float32


def fire(v: torch.Tensor, vth: float, spikes: torch.Tensor) -> None:
    """Spikes written to `spikes` (1.0 where v > vth) and v reset to 0 there, in float
    arithmetic rather than a boolean mask, which torch runs several times slower on the CPU.
    v - vth > 0 exactly where v > vth (a difference of distinct floats is never 0)."""
    if spikes.dtype == v.dtype:  # straight into the caller's array
        torch.sub(v, vth, out=spikes).sign_().clamp_(min=0.0)
        v.addcmul_(v, spikes, value=-1.0)  # v - v·1 = 0, v - v·0 = v: both exact
    else:
        fired = (v - vth).sign_().clamp_(min=0.0)
        v.addcmul_(v, fired, value=-1.0)
        spikes.copy_(fired)


def decay_(values: torch.Tensor, kept: int) -> None:
    """Lava's integer decay in place: values * kept / 4096, shifted toward zero, for integer
    values below 2**23 in size. The products are exact in float64, and dividing with rounding
    mode "trunc" is the shift (torch's trunc_ is slower); where kept divides 4096, one exact
    division by a power of two does both. float32 holds the products (up to 2**35) only in two
    parts: values = 4096·high + low, whose decays high·kept + trunc(low·kept / 4096) (both below
    2**24 and of the same sign) add up to the whole's."""
    if kept and DECAY_UNITY % kept == 0:
        values.div_(DECAY_UNITY // kept, rounding_mode="trunc")
    elif values.dtype == torch.float64:
        values.mul_(kept / DECAY_UNITY).div_(1.0, rounding_mode="trunc")
    else:
        high = values.div(DECAY_UNITY, rounding_mode="trunc")
        values.sub_(high, alpha=DECAY_UNITY)  # the low part, |low| < 4096
        values.mul_(kept / DECAY_UNITY).div_(1.0, rounding_mode="trunc")
        values.add_(high, alpha=kept)


def current_bound(pop: EmulatedPopulation, input_bound: float) -> float:
    """A bound on a fixed-point population's |u| from a bound on its |a_in|: each step adds at
    most input_bound << 6 and the decay keeps at most (4095 - du) / 4096 of the rest."""
    kept = (DECAY_UNITY - (pop.du + 1)) / DECAY_UNITY
    added = input_bound * (1 << ACTIVATION_SHIFT)
    return added / (1.0 - kept) if kept < 1.0 else float("inf")


def float32_room(pop: EmulatedPopulation) -> float:
    """The bound on a fixed-point population's |a_in| below which its v can run in float32:
    its current forgets itself (v is its only state), so v's values are decay(v) (exact, see
    decay_) + (a_in << 6) + bias, integers below 2**23 + 64·|a_in| + |bias|, all exact in
    float32 while that stays below 2**24."""
    if not pop.forgets_current:
        return 0.0
    bias = 0.0 if pop.bias is None else float(pop.bias.abs().max())
    return max(0.0, (EXACT_FLOAT32 - STATE_LIMIT - bias) / (1 << ACTIVATION_SHIFT))


def float_lif(
    pop: EmulatedPopulation,
    u: torch.Tensor | None,
    v: torch.Tensor,
    a_in: torch.Tensor | None,
) -> bool:
    """PyLifResetModelFloat's step, in place, with its order of roundings, up to the spikes:
    whether any neuron crossed its threshold (then `fire`)."""
    if pop.forgets_current:  # u = 0·u + a_in = a_in exactly
        v.mul_(1 - pop.dv)
        if a_in is not None:
            v.add_(a_in)
    else:
        u.mul_(1 - pop.du)
        if a_in is not None:
            u.add_(a_in)
        v.mul_(1 - pop.dv).add_(u)
    if pop.bias is not None:
        v.add_(pop.bias)
    return float(v.max()) > pop.vth


def fixed_lif(
    pop: EmulatedPopulation,
    u: torch.Tensor | None,
    v: torch.Tensor,
    a_in: torch.Tensor | None,
) -> bool:
    """PyLifResetModelBitAcc's step, in place, up to the spikes: whether any neuron crossed
    its threshold (then `fire`). Every value
    is an integer below 2**37, so float64 arithmetic is exact (see decay_), and float32 where
    float32_room admits v in it."""
    if not pop.forgets_current:
        decay_(u, DECAY_UNITY - (pop.du + 1))
        if a_in is not None:
            u.add_(a_in, alpha=1 << ACTIVATION_SHIFT)
        if pop.checks_current:
            low, high = torch.aminmax(u)
            if high >= STATE_LIMIT or low <= -STATE_LIMIT:
                overflow(pop.name, "its current u wrapped around 24 bits")
    decay_(v, DECAY_UNITY - pop.dv)
    if not pop.forgets_current:
        v.add_(u)
    elif a_in is not None:  # u = a_in << 6 (its 24 bits checked with the input)
        v.add_(a_in, alpha=1 << ACTIVATION_SHIFT)
    if pop.bias is not None:
        v.add_(pop.bias if v.dtype == torch.float64 else pop.bias32)
    low, high = torch.aminmax(v)
    if high >= STATE_LIMIT - 1 or low <= -(STATE_LIMIT - 1):
        overflow(pop.name, "its voltage v saturated at 24 bits")
    return bool(high > pop.vth)


def overflow(layer: str, what: str) -> None:
    """Raise the fixed-point overflow error for a layer."""
    raise MksgnError(
        f"layer '{layer}': fixed-point overflow ({what}); Lava would wrap silently. Scale "
        "the layer's weights down or lower its threshold"
    )
