"""The Lava plan a NIR graph is lowered to (convert/lava_graph.py builds it): neuron populations,
synapses between them and pipeline depths, in Lava's (W, H, C) layout; the conversions between
NIR and Lava layouts; convolution geometry in Lava's flat order; and what fixed point and the
manifest read off a plan. Pure NumPy: nothing here imports Lava."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from mksgn.errors import MksgnError

NEVER_SPIKES = 1e30  # threshold of a non-spiking (LI, I, readout) population in floating point
# The nir_type of a population that stands for no NIR node: it spikes on every step so that a
# Dense from it adds a constant to a CubaLIF/CubaLI's synaptic current (NIR's bias semantics).
BIAS_SOURCE = "bias source"
MAX_DENSE_ENTRIES = 50_000_000  # a composed path bigger than this must stay a single Lava Conv
MAX_SPARSE_ENTRIES = 200_000_000  # ~2.4 GB per copy of the csr matrix; bigger convs stay Lava Conv
CONV_LOWERINGS = ("auto", "conv", "sparse")
# Cost of one Lava step per synapse process on one CPU core. Lava 0.10's Conv model runs scipy's
# convolve2d once per (output, input) channel pair per step (its torch path is disabled upstream);
# each call cost up to ~10 µs here. Lava's Sparse model selects the spiking columns of its csr
# matrix and sums them: ~3 ns per stored nonzero measured on a 82 M-entry matrix. Dense is one
# matvec.
SECONDS_PER_CONV_CHANNEL_PAIR = 1e-5
SECONDS_PER_SPARSE_NONZERO = 5e-9
SECONDS_PER_DENSE_WEIGHT = 2e-9


@dataclasses.dataclass
class Population:
    """One Lava LIF population: the image of a NIR neuron node (or of a readout)."""

    name: str  # the NIR node it stands for ("<output>.readout" for a readout)
    nir_type: str
    nir_shape: tuple[int, ...]
    lava_shape: tuple[int, ...]
    du: float
    dv: float
    vth: float
    bias: np.ndarray  # lava layout, in voltage units per step
    spiking: bool
    depth: int = 0
    max_abs_input: float = 0.0  # bound on |a_in| per step (fixed-point range check)
    max_negative_input: float = 0.0  # bound on -a_in per step: what drives v down


@dataclasses.dataclass
class Synapse:
    """One Lava Dense, Conv or Sparse process from a source population (or the input) to a target."""

    name: str  # NIR nodes of the path joined with '+'
    source: str
    target: str
    kind: str  # "dense" or "conv"
    weight: np.ndarray  # dense: (N_out, N_in) lava flat order; conv: (C_out, kw, kh, C_in/groups)
    graded: bool  # source sends values, not spikes
    conv: dict[str, object] | None = None  # input_shape, stride, padding, dilation, groups
    extra_hops: int = 0  # identity hops appended (depth equalisation, NIR Delay)
    back_edge: bool = False
    # A conv run as a Lava Sparse matrix (built from `weight` and `conv` by conv_sparse_matrix)
    # instead of a Lava Conv; `nonzeros` is that matrix's number of stored entries.
    sparse: bool = False
    nonzeros: int = 0

    @property
    def lava_process(self) -> str:
        """The Lava process class this synapse becomes."""
        if self.kind == "dense":
            return "Dense"
        return "Sparse" if self.sparse else "Conv"

    def step_seconds(self) -> float:
        """Estimated wall seconds its Lava process model needs for one step."""
        if self.kind == "dense":
            return self.weight.size * SECONDS_PER_DENSE_WEIGHT
        if self.sparse:
            return self.nonzeros * SECONDS_PER_SPARSE_NONZERO
        out_channels, *_, in_channels_per_group = self.weight.shape
        return out_channels * in_channels_per_group * SECONDS_PER_CONV_CHANNEL_PAIR


@dataclasses.dataclass
class LavaPlan:
    """A NIR graph lowered to Lava populations and synapses, with pipeline depths."""

    input_name: str
    input_nir_shape: tuple[int, ...]
    input_lava_shape: tuple[int, ...]
    populations: dict[str, Population]
    synapses: list[Synapse]
    records: dict[str, tuple[str, str]]  # NIR node -> (population, "spikes" | "v")
    outputs: tuple[str, ...]
    dt: float

    @property
    def depth(self) -> int:
        """The pipeline depth: Lava steps between an input step and the deepest population."""
        return max((p.depth for p in self.populations.values()), default=0)

    @property
    def carries_over(self) -> bool:
        """Whether a stream of samples through one network would carry a sample's last steps
        into the next: an edge closing a cycle delivers the previous step on the reset step, and
        a NIR Delay's identity hops deliver steps from before the target's sample began."""
        for syn in self.synapses:
            if syn.back_edge:
                return True
            source = self.populations.get(syn.source)
            source_depth = 0 if source is None else source.depth
            if 1 + syn.extra_hops > self.populations[syn.target].depth - source_depth:
                return True
        return False


# ---------------------------------------------------------------------------- layouts


def lava_shape(nir_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Lava's (W, H, C) layout of a NIR (C,), (C, L) or (C, H, W) shape."""
    if len(nir_shape) == 1:
        return tuple(nir_shape)
    if len(nir_shape) == 2:
        return (nir_shape[1], 1, nir_shape[0])
    if len(nir_shape) == 3:
        return (nir_shape[2], nir_shape[1], nir_shape[0])
    raise MksgnError(f"tensor shape {nir_shape} has no Lava layout: use at most 3 dimensions")


def to_lava(array: np.ndarray, nir_shape: tuple[int, ...]) -> np.ndarray:
    """Reorder trailing NIR-layout axes (C[, H], W) of `array` into Lava's (W, H, C)."""
    lead = array.shape[: array.ndim - len(nir_shape)]
    n = len(lead)
    if len(nir_shape) == 1:
        return array
    if len(nir_shape) == 2:
        return np.swapaxes(array, n, n + 1)[..., None, :].reshape(lead + lava_shape(nir_shape))
    return np.moveaxis(array, [n, n + 1, n + 2], [n + 2, n + 1, n])


def from_lava(array: np.ndarray, nir_shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of `to_lava`."""
    lead = array.shape[: array.ndim - len(lava_shape(nir_shape))]
    n = len(lead)
    if len(nir_shape) == 1:
        return array
    if len(nir_shape) == 2:
        return np.swapaxes(array[..., 0, :], n, n + 1)
    return np.moveaxis(array, [n + 2, n + 1, n], [n, n + 1, n + 2])


def lava_order(nir_shape: tuple[int, ...]) -> np.ndarray:
    """For each Lava flat index, the NIR flat index of the same element."""
    index = np.arange(int(np.prod(nir_shape))).reshape(nir_shape)
    return to_lava(index, nir_shape).ravel()


def conv_taps(
    kernel: np.ndarray, conv: dict, output_shape: tuple[int, ...]
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per kernel tap, in order of increasing input position: the tap's (C_out, C_in/groups)
    weights and the Lava flat positions (output, input) it connects, padding left out."""
    out_w, out_h, _ = output_shape
    in_w, in_h, _ = conv["input_shape"]
    stride_w, stride_h = conv["stride"]
    pad_w, pad_h = conv["padding"]
    dil_w, dil_h = conv["dilation"]
    kernel_w, kernel_h = kernel.shape[1:3]
    taps = []
    # The Lava kernel is flipped: Lava tap (kernel_w-1-j, kernel_h-1-i) is cross-correlation tap
    # (i, j), which reads input column w'·stride - pad + j·dilation.
    for j in range(kernel_w):
        in_cols = np.arange(out_w) * stride_w - pad_w + j * dil_w
        for i in range(kernel_h):
            in_rows = np.arange(out_h) * stride_h - pad_h + i * dil_h
            col_ok = (in_cols >= 0) & (in_cols < in_w)
            row_ok = (in_rows >= 0) & (in_rows < in_h)
            out_pos = (np.flatnonzero(col_ok)[:, None] * out_h + np.flatnonzero(row_ok)).ravel()
            in_pos = (in_cols[col_ok][:, None] * in_h + in_rows[row_ok]).ravel()
            taps.append((kernel[:, kernel_w - 1 - j, kernel_h - 1 - i, :], out_pos, in_pos))
    return taps


def conv_nonzeros(kernel: np.ndarray, conv: dict, output_shape: tuple[int, ...]) -> int:
    """Stored entries of `conv_sparse_matrix` for this kernel, without building it."""
    return sum(
        int(np.count_nonzero(tap)) * len(out_pos)
        for tap, out_pos, _ in conv_taps(kernel, conv, output_shape)
    )


def conv_sparse_matrix(kernel: np.ndarray, conv: dict, output_shape: tuple[int, ...]) -> object:
    """The scipy csr (N_out, N_in) matrix, in Lava flat order, of a Lava-layout conv kernel
    (C_out, kw, kh, C_in/groups) with geometry `conv`; zero weights are not stored.

    Built from indices (no N_out x N_in intermediate); each row's columns come out sorted, i.e.
    in the order Lava's flat input is laid out."""
    import scipy.sparse

    in_channels = int(conv["input_shape"][2])
    out_channels = int(output_shape[2])
    per_group_out = out_channels // int(conv["groups"])
    per_group_in = kernel.shape[3]
    rows, cols, values = [], [], []
    for tap, out_pos, in_pos in conv_taps(kernel, conv, output_shape):
        out_channel, local_in = np.nonzero(tap)
        in_channel = (out_channel // per_group_out) * per_group_in + local_in
        rows.append((out_pos[:, None] * out_channels + out_channel).astype(np.int32).ravel())
        cols.append((in_pos[:, None] * in_channels + in_channel).astype(np.int32).ravel())
        values.append(np.broadcast_to(tap[out_channel, local_in], (len(out_pos), len(in_channel))))
    shape = (int(np.prod(output_shape)), int(np.prod(conv["input_shape"])))
    data = np.concatenate([v.ravel() for v in values]) if values else np.zeros(0, kernel.dtype)
    matrix = scipy.sparse.coo_matrix(
        (data, (np.concatenate(rows), np.concatenate(cols))), shape=shape
    ).tocsr()
    matrix.sort_indices()  # a no-op when the taps came in order; Lava sums in stored order
    return matrix


def input_bound(plan: LavaPlan, input_abs_max: float = 1.0) -> None:
    """Fill each population's bound on |input current| per step (for fixed-point ranges)."""
    for pop in plan.populations.values():
        pop.max_abs_input = pop.max_negative_input = 0.0
    for syn in plan.synapses:
        scale = input_abs_max if syn.graded else 1.0
        target = plan.populations[syn.target]
        target.max_abs_input += max_row_sum(syn, syn.weight) * scale
        # Spikes are 0 or 1, so only negative weights pull down; a graded input may be negative.
        negative = syn.weight if syn.graded else np.minimum(syn.weight, 0.0)
        target.max_negative_input += max_row_sum(syn, negative) * scale


def max_row_sum(syn: Synapse, weight: np.ndarray) -> float:
    """Largest sum of |weights| into one target neuron, for `weight` laid out like syn.weight."""
    if syn.kind == "dense":
        return float(np.abs(weight).sum(axis=1).max(initial=0))
    # A conv's kernel row sum bounds every output, padded or not (Conv and Sparse alike).
    return float(np.abs(weight).reshape(weight.shape[0], -1).sum(axis=1).max(initial=0))


def nir_node_kinds(plan: LavaPlan) -> dict[str, dict[str, object]]:
    """A JSON-able description of the plan for manifests."""
    description: dict[str, dict[str, object]] = {}
    for name, pop in plan.populations.items():
        description[name] = dict(
            lava_process="LIFReset",
            nir_type=pop.nir_type,
            nir_shape=list(pop.nir_shape),
            lava_shape=list(pop.lava_shape),
            depth=pop.depth,
            du=pop.du,
            dv=pop.dv,
            vth=None if not pop.spiking else pop.vth,
        )
    for index, syn in enumerate(plan.synapses):
        description[f"synapse{index}:{syn.name}"] = dict(
            lava_process=syn.lava_process,
            source=syn.source,
            target=syn.target,
            weight_shape=list(syn.weight.shape),
            **({"nonzeros": syn.nonzeros} if syn.sparse else {}),
            graded_input=syn.graded,
            identity_hops=syn.extra_hops,
            recurrent=syn.back_edge,
        )
    return description


# ---------------------------------------------------------------------------- storage


def save_plan(plan: LavaPlan, path: Path) -> None:
    """The whole plan in one .npz (arrays, and the rest as a JSON member; no pickles)."""
    arrays: dict[str, np.ndarray] = {}
    populations = []
    for index, pop in enumerate(plan.populations.values()):
        fields = dataclasses.asdict(pop)
        arrays[f"pop{index}.bias"] = np.asarray(fields.pop("bias"))
        populations.append(fields)
    synapses = []
    for index, syn in enumerate(plan.synapses):
        fields = dataclasses.asdict(syn)
        arrays[f"syn{index}.weight"] = np.asarray(fields.pop("weight"))
        synapses.append(fields)
    described = {
        "input_name": plan.input_name,
        "input_nir_shape": list(plan.input_nir_shape),
        "input_lava_shape": list(plan.input_lava_shape),
        "records": {node: list(record) for node, record in plan.records.items()},
        "outputs": list(plan.outputs),
        "dt": plan.dt,
        "populations": populations,
        "synapses": synapses,
    }
    arrays["plan"] = np.array(json.dumps(described))
    with path.open("wb") as handle:
        np.savez(handle, **arrays)


def load_plan(path: Path) -> LavaPlan:
    """The plan save_plan wrote; MksgnError if the file is not one."""

    def shaped(fields: dict, *keys: str) -> dict:
        return {**fields, **{key: tuple(fields[key]) for key in keys}}

    def conv(fields: dict) -> dict:
        geometry = fields.get("conv")
        if geometry is not None:
            geometry = {k: tuple(v) if isinstance(v, list) else v for k, v in geometry.items()}
        return {**fields, "conv": geometry}

    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        described = json.loads(str(arrays["plan"]))
        populations = {}
        for index, fields in enumerate(described["populations"]):
            fields = shaped(fields, "nir_shape", "lava_shape")
            populations[fields["name"]] = Population(**fields, bias=arrays[f"pop{index}.bias"])
        synapses = [
            Synapse(**conv(fields), weight=arrays[f"syn{index}.weight"])
            for index, fields in enumerate(described["synapses"])
        ]
        return LavaPlan(
            input_name=described["input_name"],
            input_nir_shape=tuple(described["input_nir_shape"]),
            input_lava_shape=tuple(described["input_lava_shape"]),
            populations=populations,
            synapses=synapses,
            records={node: tuple(record) for node, record in described["records"].items()},
            outputs=tuple(described["outputs"]),
            dt=float(described["dt"]),
        )
    except (OSError, ValueError, KeyError, TypeError, EOFError) as error:
        raise MksgnError(f"{path} is not a stored Lava plan ({error})") from None
