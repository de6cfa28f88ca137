"""What NIR's linear nodes compute, in NumPy: per-population parameters, convolution geometry and
kernels, a node applied to a batch, and the bias it adds. The Lava lowering composes paths of
these nodes into synapses (convert/lava_graph.py)."""

from __future__ import annotations

import nir
import numpy as np

from mksgn.convert.nir_validation import flatten_output_shape
from mksgn.errors import MksgnError


def uniform(value: object, what: str, name: str) -> float:
    """One value shared by a whole population (Lava shares du, dv and vth per process)."""
    array = np.asarray(value, dtype=np.float64)
    if array.size == 0 or not np.all(array == array.flat[0]):
        raise MksgnError(
            f"node '{name}': {what} differs between neurons; Lava shares it per population — "
            "use one value per layer"
        )
    return float(array.flat[0])


def broadcast(value: object, shape: tuple[int, ...], what: str, name: str) -> np.ndarray:
    """A per-neuron parameter as an array shaped like the population."""
    try:
        return np.broadcast_to(np.asarray(value, dtype=np.float64), shape).copy()
    except ValueError as error:
        raise MksgnError(
            f"node '{name}': {what} shaped {np.shape(value)} does not fit the population {shape}"
        ) from error


def conv_params(node: nir.NIRNode) -> dict[str, object]:
    """Kernel geometry of a NIR Conv1d/Conv2d/pool node as 2-D (H, W) tuples."""
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        kernel = tuple(int(k) for k in np.broadcast_to(node.kernel_size, (2,)))
        return dict(
            kernel=kernel,
            stride=tuple(int(s) for s in np.broadcast_to(node.stride, (2,))),
            padding=tuple(int(p) for p in np.broadcast_to(node.padding, (2,))),
            dilation=(1, 1),
        )
    one_d = isinstance(node, nir.Conv1d)
    kernel = tuple(node.weight.shape[2:])
    kernel = (1, kernel[0]) if one_d else kernel
    dilation = (1, int(node.dilation)) if one_d else tuple(np.broadcast_to(node.dilation, (2,)))
    stride = (1, int(node.stride)) if one_d else tuple(np.broadcast_to(node.stride, (2,)))
    if isinstance(node.padding, str):
        if node.padding == "valid":
            padding = (0, 0)
        else:  # 'same': stride 1, even reach (checked by lava_graph.check_lava_nodes)
            padding = tuple((d * (k - 1)) // 2 for k, d in zip(kernel, dilation, strict=True))
    else:
        padding = (0, int(node.padding)) if one_d else tuple(np.broadcast_to(node.padding, (2,)))
    return dict(
        kernel=tuple(int(k) for k in kernel),
        stride=tuple(int(s) for s in stride),
        padding=tuple(int(p) for p in padding),
        dilation=tuple(int(d) for d in dilation),
    )


def conv_kernel(node: nir.NIRNode, channels: int) -> tuple[np.ndarray, int]:
    """(C_out, C_in/groups, kh, kw) weight and groups of a conv or pool node."""
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        kh, kw = conv_params(node)["kernel"]
        value = 1.0 if isinstance(node, nir.SumPool2d) else 1.0 / (kh * kw)
        return np.full((channels, 1, kh, kw), value), channels
    weight = np.asarray(node.weight, dtype=np.float64)
    if isinstance(node, nir.Conv1d):
        weight = weight[:, :, None, :]
    return weight, int(node.groups)


def apply_conv(node: nir.NIRNode, x: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """Cross-correlation (PyTorch convention) of a batch x (B, *in_shape) without bias."""
    import torch

    geo = conv_params(node)
    weight, groups = conv_kernel(node, in_shape[0])
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    if len(in_shape) == 2:
        xt = xt[:, :, None, :]
    y = torch.nn.functional.conv2d(
        xt,
        torch.from_numpy(weight),
        stride=geo["stride"],
        padding=geo["padding"],
        dilation=geo["dilation"],
        groups=groups,
    )
    return (y[:, :, 0, :] if len(in_shape) == 2 else y).numpy()


def linear_apply(
    name: str, node: nir.NIRNode, x: np.ndarray, in_shape: tuple[int, ...]
) -> np.ndarray:
    """A linear node without its bias applied to a batch x (B, *in_shape) in NIR layout."""
    if isinstance(node, (nir.Affine, nir.Linear)):
        weight = np.asarray(node.weight, dtype=np.float64)
        if weight.shape[1] != int(np.prod(in_shape)):
            raise MksgnError(
                f"node '{name}' ({type(node).__name__}): weight {weight.shape} does not take "
                f"an input shaped {in_shape}"
            )
        return x.reshape(len(x), -1) @ weight.T
    if isinstance(node, nir.Scale):
        return x * broadcast(node.scale, in_shape, "scale", name)
    if isinstance(node, (nir.Conv1d, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d)):
        if len(in_shape) not in (2, 3):
            raise MksgnError(
                f"node '{name}': convolution input shaped {in_shape} is not (C, [H,] W)"
            )
        return apply_conv(node, x, in_shape)
    if isinstance(node, nir.Flatten):
        return x.reshape(len(x), *flatten_output_shape(node, in_shape))
    if isinstance(node, nir.Delay):
        return x
    raise MksgnError(f"node '{name}' of type {type(node).__name__} is not a linear node")


def linear_bias(name: str, node: nir.NIRNode, shape: tuple[int, ...]) -> np.ndarray | None:
    """The bias a linear node adds, shaped like its output (None when it has none)."""
    bias = getattr(node, "bias", None)
    if bias is None or isinstance(node, nir.Linear):
        return None
    bias = np.asarray(bias, dtype=np.float64)
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        bias = bias.reshape((-1,) + (1,) * (len(shape) - 1))
    return broadcast(bias, shape, "bias", name)
