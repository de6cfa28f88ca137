"""The emulator's products (targets/emulator_products.py): int8 products with exact integer sums
for spikes and for graded integers of any range, digit by digit, the same run without them (a
GPU's path), and sparse graph-convolution matrices multiplied group by group."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mksgn.targets.emulator_products import (
    INT8_EXACT_SUM,
    DenseMatrix,
    SupportBlocks,
    int8_weights,
)


def test_without_int8_products_the_run_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path a GPU takes (no int8 products: float32 and float64 ones) gives the student the
    same spikes and voltages as the CPU's int8 products, bit for bit."""
    from model_fixtures import joints, node_major_input, spiking_nodes, spiking_student

    from mksgn.convert.nir_export import student_to_nir
    from mksgn.targets import emulator_products
    from mksgn.targets.emulator import EmulatorTarget

    model = spiking_student("mk-sgn")
    graph = student_to_nir(model)
    spiking = spiking_nodes(graph)
    inputs = node_major_input(model, joints(batch=3))
    with_int8 = EmulatorTarget().run(graph, inputs, spiking)
    monkeypatch.setattr(emulator_products, "int8_weights", lambda matrix, inputs: None)
    without = EmulatorTarget().run(graph, inputs, spiking)
    for node in [*spiking, *graph.outputs]:
        assert with_int8.recorded[node].any(), node
        np.testing.assert_array_equal(with_int8.recorded[node], without.recorded[node], node)


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


def test_digits_are_reused_only_for_the_same_unchanged_values() -> None:
    """Synapses reading one graded input split it into digits once; a view of the same memory
    after an in-place change, or other values, are split again."""
    from mksgn.targets.emulator_products import seven_bit_digits

    rng = np.random.default_rng(1)
    weights = [rng.integers(-128, 128, (5, 30)).astype(np.float64) for _ in range(2)]
    products = [int8_weights(weight, "integers") for weight in weights]
    base = torch.as_tensor(rng.integers(-3000, 3000, (4, 6, 30)).astype(np.float32))
    values = base.reshape(-1, 30)
    first = seven_bit_digits(values)
    assert seven_bit_digits(base.reshape(-1, 30)) is first  # another view of the same memory
    for product, weight in zip(products, weights, strict=True):
        got = product.integers(base.reshape(-1, 30)).double().numpy()
        assert np.array_equal(got, values.double().numpy() @ weight.T)
    base[0, 0, 0] += 4000.0  # in place: the digits must follow
    assert seven_bit_digits(values) is not first
    for product, weight in zip(products, weights, strict=True):
        got = product.integers(values).double().numpy()
        assert np.array_equal(got, values.double().numpy() @ weight.T)
    assert seven_bit_digits(values[1:]) is not seven_bit_digits(values)


def graph_convolution_matrix(rng: np.random.Generator, joints: int, width: int) -> np.ndarray:
    """A (joints·width, joints·width) pointwise kernel of a graph convolution on a chain of
    joints (each joint reads itself and its neighbours), integer weights so that every order of
    additions gives the same float sums."""
    matrix = np.zeros((joints * width, joints * width))
    for joint in range(joints):
        for neighbour in (joint - 1, joint, joint + 1):
            if 0 <= neighbour < joints:
                block = rng.choice([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0], size=(width, width))
                rows, columns = slice(joint * width, (joint + 1) * width), neighbour * width
                matrix[rows, columns : columns + width] = block
    return matrix


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_support_blocks_equal_the_dense_product(dtype: torch.dtype) -> None:
    """A graph convolution's kernel is multiplied joint by joint (the end joints reading fewer
    columns), also with weights quantised to zero here and there and an output no input
    reaches, and gives the dense product's sums."""
    rng = np.random.default_rng(0)
    matrix = graph_convolution_matrix(rng, joints=25, width=32)
    sprinkled = np.where(rng.random(matrix.shape) < 0.2, 0.0, matrix)
    sprinkled[5] = 0.0
    values = torch.as_tensor(rng.integers(-50, 50, size=(33, matrix.shape[1])), dtype=dtype)
    for weights in (matrix, sprinkled):
        blocks = SupportBlocks.of(weights, dtype, "cpu")
        assert blocks is not None
        assert blocks.weights.numel() < weights.size / 3  # runs of outputs read few joints
        expected = values.to(torch.float64) @ torch.as_tensor(weights).T
        assert torch.equal((blocks @ values).to(torch.float64), expected)
        product = DenseMatrix(weights, dtype == torch.float32, "cpu")
        assert product.blocks is not None
        assert torch.equal((product @ values).to(torch.float64), expected)


def test_support_blocks_only_where_they_pay() -> None:
    """A dense matrix, or a graph convolution's with its outputs shuffled (no run of outputs
    reads few columns), stays one dense product; so does one int8 products take."""
    rng = np.random.default_rng(1)
    dense = rng.standard_normal((64, 48))
    assert SupportBlocks.of(dense, torch.float64, "cpu") is None
    assert DenseMatrix(dense, False, "cpu").blocks is None
    matrix = graph_convolution_matrix(rng, joints=25, width=32)
    shuffled = matrix[rng.permutation(len(matrix))]
    assert SupportBlocks.of(shuffled, torch.float64, "cpu") is None
    assert DenseMatrix(matrix, True, "cpu", "spikes").blocks is None
