"""The emulator's int8 products (targets/emulator_products.py): exact integer sums for spikes
and for graded integers of any range, digit by digit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mksgn.targets.emulator_products import INT8_EXACT_SUM, int8_weights


def test_int8_products_are_exact_up_to_their_bound() -> None:
    """Spikes times 8-bit weights through the int8 product equal the exact integer sums, at the
    extremes of the weights and near the sums' bound; weights no power of two brings into int8
    are left to the float path."""
    rng = np.random.default_rng(0)
    fan_in = 8000
    weight = np.stack(
        [
            np.full(fan_in, 254.0),  # 8000 * 254 = 2,032,000: just below 2**21
            np.full(fan_in, -256.0),
            rng.integers(-128, 128, fan_in) * 2.0,
        ]
    )
    assert np.abs(weight).sum(axis=1).max() < INT8_EXACT_SUM
    spikes = (rng.random((64, fan_in)) < 0.5).astype(np.float32)
    spikes[0] = 1.0
    product = int8_weights(weight, "spikes")
    assert product is not None
    got = product(torch.as_tensor(spikes)).numpy().astype(np.float64)
    assert np.array_equal(got, spikes.astype(np.float64) @ weight.T)
    assert got[0, 1] == -256.0 * fan_in
    assert int8_weights(np.array([[255.0, 1.0]]), "spikes") is None
    assert int8_weights(np.array([[300.0, 4.0]]), "spikes") is not None
    assert int8_weights(weight, None) is None
    # Integers digit by digit need 127 times the row sums (int8 units) below the bound.
    assert int8_weights(weight, "integers") is None


@pytest.mark.parametrize(
    ("low", "high"),
    [
        (-(2**24), 2**24),
        (-(2**23), 2**23 - 1),
        (0, 1),
        (0, 127),
        (0, 128),
        (-5227, 5227),
        (3, 9),
        (0, 0),
        (-1, -1),
    ],
)
def test_int8_integer_products_are_exact(low: int, high: int) -> None:
    """Graded integers of any range times 8-bit weights through int8 products of their 7-bit
    digits equal the exact float64 sums, at the extremes of the values and the weights, where
    the sums exceed float32's 2**24 and where they stay below it."""
    rng = np.random.default_rng([abs(low), abs(high)])
    fan_in = 64
    weight = np.stack(
        [
            np.full(fan_in, 254.0),  # 127 * 64 * 127 = 1,032,256 int8 units per digit
            np.full(fan_in, -256.0),
            rng.integers(-128, 128, fan_in) * 2.0,
        ]
    )
    product = int8_weights(weight, "integers")
    assert product is not None and product.digit_sum_bound < INT8_EXACT_SUM
    values = rng.integers(low, high + 1, (40, fan_in)).astype(np.float64)
    values[0], values[1] = high, low
    # float32 exactly where every partial sum stays below 2**24.
    exact32 = (high - min(low, 0)) * np.abs(weight).sum(axis=1).max() < 2**24
    for dtype in (torch.float64, torch.float32):  # 24-bit values are exact in either
        got = product.integers(torch.as_tensor(values, dtype=dtype))
        assert got.dtype == (torch.float32 if exact32 else torch.float64)
        assert np.array_equal(got.double().numpy(), values @ weight.T)
    assert product.integers(torch.zeros((0, fan_in))).shape == (0, 3)
