"""The synapse products of the emulator (targets/emulator.py): a synapse's weights held as a
torch matrix (float, or int8 for fixed-point weights times spikes or graded integers), a scipy
csr matrix or a convolution kernel, each mapping a source's values (columns, N_in) to the
synapse's sums (columns, N_out): in float32 where integer sums are exact in it (fixed point
below 2**24), else float64. Neurons are in Lava's flat order (W, H, C with C fastest), which is
torch's channels-last layout of a (C, W, H) image: a convolution reads and writes the values in
place, without a copy."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from mksgn.targets.emulator_neurons import EXACT_FLOAT32

# Below this, the float32 output of an int8 product is within far less than 0.5 of its integer
# sum (a few float32 roundings of 2**-24 each), so rounding it recovers the sum exactly.
INT8_EXACT_SUM = 2**21
# The activations' bits in an int8 product: 7 (reduce_range), so that x86 kernels without VNNI,
# which add pairs of products in saturating int16, cannot saturate.
DIGIT_BITS = 7
DIGIT = 1 << DIGIT_BITS


class Int8Weights:
    """Integer weights times spikes or integers through PyTorch's int8 dynamic linear product
    (VNNI on x86: 3-4x the float32 product's rate on this CPU), its output rounded to the
    integer sums."""

    def __init__(self, matrix: np.ndarray, scale: int) -> None:
        """Weights (N_out, N_in), each `scale` times an int8 (see int8_weights)."""
        weight = np.asarray(matrix, dtype=np.float64)
        quantized = torch.quantize_per_tensor(
            torch.as_tensor(weight, dtype=torch.float32), float(scale), 0, torch.qint8
        )
        self.packed = torch.ops.quantized.linear_prepack(quantized, None)
        # The largest sum of |weights| into one output, and that of one 7-bit digit times the
        # weights in int8 units (the quantity INT8_EXACT_SUM bounds).
        self.row_abs_max = float(np.abs(weight).sum(axis=1).max(initial=0))
        self.digit_sum_bound = (DIGIT - 1) * self.row_abs_max / scale
        row_sums = torch.as_tensor(weight.sum(axis=1))
        self.row_sums = {dtype: row_sums.to(dtype) for dtype in (torch.float32, torch.float64)}

    def __call__(self, spikes: torch.Tensor) -> torch.Tensor:
        """The sums (rows, N_out) float32 for spikes (rows, N_in) of 0 and 1."""
        return torch.ops.quantized.linear_dynamic(spikes.contiguous(), self.packed, True).round_()

    def integers(self, values: torch.Tensor) -> torch.Tensor:
        """The sums (rows, N_out) for integer values (rows, N_in) below 2**31 in size:
        one int8 product of their 7-bit digits, combined exactly (valid where digit_sum_bound is
        below INT8_EXACT_SUM); float32 where the sums' bound keeps them exact in it, else
        float64."""
        rows = values.shape[0]
        if not values.numel():
            return values.new_zeros((rows, len(self.row_sums[torch.float64])))
        digits = seven_bit_digits(values)
        count, offset, span = digits.count, digits.offset, digits.span
        parts = torch.ops.quantized.linear_dynamic(digits.matrix, self.packed, True)[:-1]
        # Horner's rule over the digits' sums, then the offset times the weights' row sums:
        # every partial result is at most span times the largest row sum of |weights|, so
        # float32 adds them exactly below 2**24.
        exact32 = span * self.row_abs_max < EXACT_FLOAT32
        parts = parts.to(torch.float32 if exact32 else torch.float64).reshape(count, rows, -1)
        sums = parts[count - 1].clone()
        for k in range(count - 2, -1, -1):
            sums.mul_(DIGIT).add_(parts[k])
        if offset:
            sums.add_(self.row_sums[sums.dtype].to(sums.device), alpha=offset)
        return sums


@dataclasses.dataclass(frozen=True)
class Digits:
    """Integer values (rows, N_in) as unsigned 7-bit digits for one int8 product: rows
    [k·rows, (k+1)·rows) of `matrix` hold digit k of values - offset (offset = min(values, 0)),
    and its last row pins the dynamic quantisation to scale 1."""

    matrix: torch.Tensor
    count: int
    offset: float
    span: float  # max(values) - offset


# The last values split into digits, with their version counter (their memory cannot be reused
# while they are held here): the synapses reading one graded input split it once.
_last_digits: list[tuple[torch.Tensor, int, Digits]] = []


def seven_bit_digits(values: torch.Tensor) -> Digits:
    """The Digits of integer values (rows, N_in) below 2**31 in size; those of the last call
    again where `values` is the same view of the same, unchanged memory."""
    for held, version, digits in _last_digits:
        same_view = (held.device, held.data_ptr(), held.shape, held.stride(), held.dtype) == (
            values.device,
            values.data_ptr(),
            values.shape,
            values.stride(),
            values.dtype,
        )
        if same_view and values._version == version:
            return digits
    rows, size_in = values.shape
    low, high = (float(limit) for limit in torch.aminmax(values))
    offset = min(low, 0.0)  # values - offset >= 0: unsigned digits
    span = high - offset
    count = max(1, -(-int(span).bit_length() // DIGIT_BITS))
    wide = values.to(torch.float64) if span >= EXACT_FLOAT32 else values  # exact difference
    rest = (wide - offset).to(torch.int64 if span >= 2**31 else torch.int32)
    matrix = values.new_empty((count * rows + 1, size_in), dtype=torch.float32)
    for k in range(count):
        matrix[k * rows : (k + 1) * rows] = rest & (DIGIT - 1)
        rest.bitwise_right_shift_(DIGIT_BITS)
    # Every digit in 0..127 and one row pinning the range to exactly that: the dynamic
    # quantisation then picks scale 1 and zero point 0, and quantises every digit exactly.
    matrix[-1] = 0.0
    matrix[-1, 0] = DIGIT - 1
    digits = Digits(matrix, count, offset, span)
    _last_digits[:] = [(values, values._version, digits)]
    return digits


def int8_weights(matrix: np.ndarray, inputs: str | None) -> Int8Weights | None:
    """Int8Weights for integer weights a power of two times int8 values, for `inputs` "spikes"
    (the caller found their sums below INT8_EXACT_SUM) or "integers" (fixed-point graded
    values, whose digits' bound is checked here); None where int8 does not apply."""
    # x86's engines (fbgemm, oneDNN) only: the exactness above was established for them.
    if inputs is None or torch.backends.quantized.engine not in ("x86", "fbgemm", "onednn"):
        return None
    weight = np.asarray(matrix, dtype=np.float64)
    for shift in range(0, 9):
        scaled = weight / (1 << shift)
        fits = scaled.min(initial=0) >= -128 and scaled.max(initial=0) <= 127
        if fits and np.array_equal(scaled, np.round(scaled)):
            product = Int8Weights(weight, 1 << shift)
            if inputs == "integers" and product.digit_sum_bound >= INT8_EXACT_SUM:
                return None
            return product
    return None


# Run by run (SupportBlocks) where that costs at most this share of the dense product (counting
# the gathered values, below), with few enough runs for one batched product to pay. Measured
# (float64): the tiny MK-SGN's graph convolutions, at 0.1-0.28 of the cost, ran 1.4-2.4x faster;
# an NW-UCLA MK-SGN's 2-hop ones, at 0.9, slower.
SUPPORT_BLOCKS_SHARE = 0.5
SUPPORT_BLOCKS_MAX_RUNS = 256
# What gathering one value costs, in products: measured on the tiny and paper MK-SGNs' graph
# convolutions (float64, 256 and 1024 rows), where it picks runs within 20 % of the fastest.
GATHER_COST = 64


@dataclasses.dataclass(frozen=True)
class SupportBlocks:
    """A matrix whose rows, in runs of equal length, read few columns (the outputs of one joint
    of a graph convolution folded into a pointwise kernel read only its neighbours' channels):
    each run's sums are one product of the values of the columns it reads and its block of
    weights, all runs in one batched product. Only zero terms of the dense product are left
    out, so each sum adds the same products."""

    columns: torch.Tensor  # (runs · width,): the columns each run reads, padded by zero weights
    weights: torch.Tensor  # (runs, width, rows per run)

    @classmethod
    def of(cls, matrix: np.ndarray, dtype: torch.dtype, device: str) -> SupportBlocks | None:
        """The blocks of a (N_out, N_in) matrix in the run length of least cost (products and
        gathered values), or None where that cost exceeds SUPPORT_BLOCKS_SHARE of the dense
        product's."""
        size_out, size_in = matrix.shape
        if not matrix.size:
            return None
        reads = np.packbits(matrix != 0, axis=1)  # which columns each row reads, as bits
        best = None
        for runs in range(1, min(size_out, SUPPORT_BLOCKS_MAX_RUNS) + 1):
            if size_out % runs:
                continue
            union = np.bitwise_or.reduce(reads.reshape(runs, size_out // runs, -1), axis=1)
            width = max(1, int(np.unpackbits(union, axis=1).sum(axis=1).max()))
            # Products, and the gathered copy of the values (an element costs about as much
            # as GATHER_COST products): ties go to fewer runs.
            cost = runs * width * (size_out // runs + GATHER_COST)
            if best is None or cost < best[0]:
                best = (cost, runs, width, union)
        if best is None or best[0] > SUPPORT_BLOCKS_SHARE * size_out * size_in:
            return None
        _, runs, width, union = best
        rows = size_out // runs
        columns = np.zeros((runs, width), dtype=np.int64)
        weights = np.zeros((runs, width, rows))
        for run in range(runs):
            read = np.flatnonzero(np.unpackbits(union[run], count=size_in))
            # Padding reads an existing column: its zero weights add exact zeros.
            columns[run] = read[0] if len(read) else 0
            columns[run, : len(read)] = read
            weights[run, : len(read)] = matrix[run * rows : (run + 1) * rows, read].T
        return cls(
            torch.as_tensor(columns.reshape(-1), device=device),
            torch.as_tensor(weights, device=device).to(dtype),
        )

    def __matmul__(self, source: torch.Tensor) -> torch.Tensor:
        """The sums (rows, N_out) for values (rows, N_in) in the weights' dtype."""
        rows = source.shape[0]
        runs, width, outputs = self.weights.shape
        gathered = source.index_select(1, self.columns).reshape(rows, runs, width)
        sums = torch.bmm(gathered.transpose(0, 1), self.weights)  # (runs, rows, outputs)
        return sums.transpose(0, 1).reshape(rows, runs * outputs)


class DenseMatrix:
    """Weights as a torch matrix (a fixed-point dense synapse's, or a pointwise kernel's): in
    int8 where Int8Weights applies, else in float32 where its sums stay exact, else float64,
    run by run where SupportBlocks pays; `matrix @ source` maps (columns, N_in) to
    (columns, N_out) sums."""

    def __init__(
        self, matrix: np.ndarray, float32: bool, device: str, int8_inputs: str | None = None
    ) -> None:
        """Weights (N_out, N_in); `int8_inputs` as `inputs` for int8_weights."""
        self.dtype = torch.float32 if float32 else torch.float64
        weight = np.asarray(matrix, dtype=np.float64)
        self.int8 = int8_weights(weight, int8_inputs)
        self.int8_integers = int8_inputs == "integers"
        # Not in place of int8 products: on the MK-SGNs' graph convolutions, float32 blocks of
        # spikes took 0.8-1.4x their time, float64 blocks of graded integers far longer.
        self.blocks = None
        if self.int8 is None:
            self.blocks = SupportBlocks.of(weight, self.dtype, device)
        if self.int8 is None and self.blocks is None:
            # Held as (N_in, N_out): MKL multiplied 256-row blocks 1.4x faster than through W.T.
            self.weight_t = torch.as_tensor(weight, device=device).to(self.dtype).T.contiguous()

    def __matmul__(self, source: torch.Tensor) -> torch.Tensor:
        """The synapse's sums for the source's values."""
        if self.int8 is not None and self.int8_integers:
            return self.int8.integers(source)
        if self.int8 is not None:
            return self.int8(source.to(torch.float32))
        if self.blocks is not None:
            return self.blocks @ source.to(self.dtype)
        return source.to(self.dtype) @ self.weight_t


class CsrMatrix:
    """A float dense synapse as a scipy csr matrix: per column, the same order of additions
    whatever the number of columns, so results do not depend on the batch size."""

    def __init__(self, matrix: np.ndarray) -> None:
        """Weights (N_out, N_in)."""
        import scipy.sparse

        self.matrix = scipy.sparse.csr_matrix(np.asarray(matrix), dtype=np.float64)
        self.matrix.sort_indices()

    def __matmul__(self, source: torch.Tensor) -> torch.Tensor:
        """The synapse's sums for the source's values (columns, N_in)."""
        # scipy's csr product runs per column of a (N_in, columns) array: same sums as before.
        values = np.ascontiguousarray(source.to(torch.float64).cpu().numpy().T)
        sums = np.ascontiguousarray(np.asarray(self.matrix @ values).T)
        return torch.from_numpy(sums).to(source.device)


class ConvKernel:
    """A conv synapse run as a torch convolution (one matrix product for unstrided 1x1 kernels)
    on the source's Lava-layout values, instead of an expanded (N_out, N_in) matrix: far fewer
    bytes and vectorised, multithreaded kernels. `kernel @ source` maps (columns, N_in) to
    (columns, N_out) sums like the matrix it stands for."""

    def __init__(
        self,
        kernel: np.ndarray,
        conv: dict,
        out_shape: tuple,
        float32: bool,
        device: str,
        int8_inputs: str | None = None,
    ) -> None:
        """A Lava-layout kernel (C_out, kw, kh, C_in/groups) with geometry `conv` (W, H order)
        into a population of Lava shape `out_shape`; float32 only where sums stay exact; a
        pointwise kernel is one DenseMatrix (`int8_inputs` as there)."""
        self.dtype = torch.float32 if float32 else torch.float64
        self.in_shape, self.out_shape = tuple(conv["input_shape"]), tuple(out_shape)
        # torch convolves (C, A, B) images. Lava's (W, H, C) order is channels-last for A = W,
        # B = H; a 1-D signal (H = 1 in and out) is the same bytes with A = H, B = W, which
        # oneDNN runs 2x faster (it vectorises along B).
        self.height_first = self.in_shape[1] == 1 and self.out_shape[1] == 1
        order = slice(None, None, -1) if self.height_first else slice(None)
        # Lava's Conv is a true convolution over (W, H): flipped, torch's cross-correlation.
        weight = np.asarray(kernel, dtype=np.float64)[:, ::-1, ::-1, :]
        weight = weight.transpose((0, 3, 2, 1) if self.height_first else (0, 3, 1, 2))
        self.stride = tuple(conv["stride"])[order]
        self.padding = tuple(conv["padding"])[order]
        self.dilation = tuple(conv["dilation"])[order]
        self.groups = int(conv["groups"])
        self.pointwise = (
            weight.shape[2:] == (1, 1)
            and self.groups == 1
            and self.stride == (1, 1)
            and self.padding == (0, 0)
        )
        # A pointwise kernel: its (C_out, C_in) matrix, applied to every position at once.
        self.product = None
        if self.pointwise:
            self.product = DenseMatrix(weight[:, :, 0, 0], float32, device, int8_inputs)
        else:
            # oneDNN's float32 grouped convolutions ran 1.9x faster on channels-last tensors;
            # float64 has no oneDNN path and takes torch's default layout.
            layout = torch.channels_last if float32 else torch.contiguous_format
            self.weight = torch.as_tensor(weight.copy(), device=device).to(self.dtype)
            self.weight = self.weight.contiguous(memory_format=layout)

    def __matmul__(self, source: torch.Tensor) -> torch.Tensor:
        """The synapse's sums for the source's values."""
        columns = source.shape[0]
        in_w, in_h, in_c = self.in_shape
        if self.product is not None:
            # Channels are fastest in Lava's order: one product over every position.
            y = self.product @ source.reshape(-1, in_c)
        else:
            spatial = (in_h, in_w) if self.height_first else (in_w, in_h)
            x = source.to(self.dtype)
            image = x.reshape(columns, *spatial, in_c).permute(0, 3, 1, 2)  # (M, C, A, B)
            y = torch.nn.functional.conv2d(
                image,
                self.weight,
                stride=self.stride,
                padding=self.padding,
                dilation=self.dilation,
                groups=self.groups,
            ).permute(0, 2, 3, 1)  # (M, A', B', C_out): Lava's order
        return y.reshape(columns, -1)
