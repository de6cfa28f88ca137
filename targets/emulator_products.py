"""The synapse products of the emulator (targets/emulator.py): a synapse's weights held as a
torch matrix, a scipy csr matrix or a convolution kernel, each mapping a source's values
(N_in, columns) to the synapse's sums (N_out, columns) in float64."""

from __future__ import annotations

import numpy as np
import torch


class DenseMatrix:
    """A fixed-point dense synapse's integer weights as a torch matrix (float32 where its sums
    stay exact); `matrix @ source` maps (N_in, columns) to (N_out, columns) float64."""

    def __init__(self, matrix: np.ndarray, float32: bool, device: str) -> None:
        """Weights (N_out, N_in)."""
        self.dtype = torch.float32 if float32 else torch.float64
        self.weight = torch.as_tensor(np.asarray(matrix, dtype=np.float64), device=device)
        self.weight = self.weight.to(self.dtype).contiguous()

    def __matmul__(self, source: torch.Tensor) -> torch.Tensor:
        """The synapse's sums for the source's values."""
        return (self.weight @ source.to(self.dtype)).to(torch.float64)

    def nbytes(self) -> int:
        """Bytes the matrix takes."""
        return self.weight.element_size() * self.weight.nelement()


class CsrMatrix:
    """A float dense synapse as a scipy csr matrix: per column, the same order of additions
    whatever the number of columns, so results do not depend on the batch size."""

    def __init__(self, matrix: np.ndarray) -> None:
        """Weights (N_out, N_in)."""
        import scipy.sparse

        self.matrix = scipy.sparse.csr_matrix(np.asarray(matrix), dtype=np.float64)
        self.matrix.sort_indices()

    def __matmul__(self, source: torch.Tensor) -> torch.Tensor:
        """The synapse's sums for the source's values (N_in, columns)."""
        values = source.to(torch.float64).cpu().numpy()
        return torch.from_numpy(np.asarray(self.matrix @ values)).to(source.device)

    def nbytes(self) -> int:
        """Bytes the matrix takes."""
        return self.matrix.data.nbytes + self.matrix.indices.nbytes + self.matrix.indptr.nbytes


class ConvKernel:
    """A conv synapse run as a torch convolution (a batched matrix product for 1x1 kernels) on
    the source's Lava-layout values, instead of an expanded (N_out, N_in) matrix: far fewer bytes
    and vectorised, multithreaded kernels. `kernel @ source` maps (N_in, columns) to (N_out,
    columns) float64 like the matrix it stands for."""

    def __init__(
        self, kernel: np.ndarray, conv: dict, out_shape: tuple, float32: bool, device: str
    ) -> None:
        """A Lava-layout kernel (C_out, kw, kh, C_in/groups) with geometry `conv` (W, H order)
        into a population of Lava shape `out_shape`; float32 only where sums stay exact."""
        self.dtype = torch.float32 if float32 else torch.float64
        # Lava's Conv is a true convolution over (W, H): back to torch's cross-correlation.
        weight = np.asarray(kernel, dtype=np.float64).transpose(0, 3, 2, 1)[:, :, ::-1, ::-1]
        self.weight = torch.as_tensor(weight.copy(), device=device).to(self.dtype)
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
        # oneDNN's float32 grouped convolutions ran 1.9x faster on channels-last tensors (the
        # paper MK-SGN's temporal convs); float64 has no oneDNN path.
        self.memory_format = torch.channels_last if float32 else torch.contiguous_format
        if self.pointwise:
            self.weight = self.weight[:, :, 0, 0].contiguous()
        else:
            self.weight = self.weight.contiguous(memory_format=self.memory_format)

    def __matmul__(self, source: torch.Tensor) -> torch.Tensor:
        """The synapse's output (N_out, columns) for the source's values (N_in, columns)."""
        columns = source.shape[1]
        in_w, in_h, in_c = self.in_shape
        x = source.to(self.dtype)
        if self.pointwise:
            # Lava's flat order puts channels last: (W·H, C, columns) -> (C, W·H·columns), one
            # product (faster than one per position), and back.
            x = x.reshape(in_w * in_h, in_c, columns).transpose(0, 1).reshape(in_c, -1)
            y = (self.weight @ x).reshape(-1, in_w * in_h, columns).transpose(0, 1)
        else:
            x = x.reshape(in_w, in_h, in_c, columns).permute(3, 2, 1, 0)  # (M, C, H, W)
            x = x.contiguous(memory_format=self.memory_format)
            y = torch.nn.functional.conv2d(
                x,
                self.weight,
                stride=self.stride,
                padding=self.padding,
                dilation=self.dilation,
                groups=self.groups,
            ).permute(3, 2, 1, 0)  # (W', H', C_out, M)
        return y.reshape(-1, columns).to(torch.float64)

    def nbytes(self) -> int:
        """Bytes the kernel takes."""
        return self.weight.element_size() * self.weight.nelement()
