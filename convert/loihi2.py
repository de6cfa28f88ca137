"""Loihi 2 arithmetic as Lava's fixed-point process models (PyLifResetModelBitAcc, Dense, Sparse,
Conv) implement it: the one home of every bit width and shift that quantisation (fixed_point.py),
the Lava lowering (lava_graph.py) and the bit-exact emulator (targets/emulator.py) rely on."""

from __future__ import annotations

WEIGHT_MIN, WEIGHT_MAX = -256, 254  # 8-bit mixed-sign weights (Lava keeps them even)
WEIGHT_EXP_MIN, WEIGHT_EXP_MAX = -8, 7  # a synapse's shared weight exponent
ACTIVATION_SHIFT = 6  # the LIF left-shifts a_in and vth by 6 bits
DECAY_SHIFT = 12  # u and v decay by (4096 - d) / 4096, truncated toward zero
DECAY_UNITY = 1 << DECAY_SHIFT
VTH_MAX = 2**17 - 1  # 17-bit threshold mantissa
BIAS_MANT_MAX = 2**12 - 1  # 13-bit signed bias mantissa
BIAS_EXP_MAX = 7
STATE_BITS = 24  # u wraps above 2**23, v saturates at 2**23 - 1
STATE_LIMIT = 2 ** (STATE_BITS - 1)
STATE_MAX = STATE_LIMIT - 1
GRADED_MESSAGE_BITS = 24  # graded spikes (the input, hop relays) carry 24-bit payloads
GRADED_MAX = 2 ** (GRADED_MESSAGE_BITS - 1)
INPUT_MAX = GRADED_MAX - 1
INT32_MAX = 2**31 - 1  # NumPy int32 sums in Lava's models wrap silently above it
ACCUMULATOR_MAX = INT32_MAX  # a synapse sums its inputs in int32 before the exponent shift
