"""The Lava processes of a plan: a RingBuffer source, one LIFReset per population and one Dense,
Sparse or Conv per synapse (with identity hops for delays), batched side by side when asked.
Run-time code of the Lava target only: imported inside its worker process."""

from __future__ import annotations

import numpy as np

from mksgn.convert.lava_plan import LavaPlan, Synapse, conv_sparse_matrix
from mksgn.convert.loihi2 import GRADED_MESSAGE_BITS


def build_lava(
    plan: LavaPlan,
    input_data: np.ndarray,
    reset_interval: int,
    fixed: object | None = None,
    batch: int = 1,
) -> tuple[object, dict[str, object]]:
    """Create the Lava processes for `plan` fed by a RingBuffer over `input_data` (lava layout,
    time last). Returns (the source process, population name -> LIF process).

    With `batch` > 1 the network holds `batch` copies side by side, so that one Lava step (and
    its per-process overhead) serves `batch` samples: every population is flat, sample b in the
    b-th block of `batch` equal blocks (input_data (batch * input size, time) likewise), and every
    synapse is a Sparse process with a block-diagonal matrix (batched_matrix)."""
    import scipy.sparse
    from lava.proc.conv.process import Conv
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIFReset
    from lava.proc.sparse.process import Sparse

    source = RingBuffer(data=input_data)
    lifs: dict[str, object] = {}
    for name, pop in plan.populations.items():
        params: dict[str, object]
        if fixed is None:
            params = dict(du=pop.du, dv=pop.dv, vth=pop.vth, bias_mant=pop.bias, bias_exp=0)
        else:
            params = fixed.populations[name].lava_params()
        shape = pop.lava_shape
        if batch > 1:
            shape = (batch * int(np.prod(shape)),)
            bias = np.broadcast_to(params["bias_mant"], pop.lava_shape)
            params["bias_mant"] = np.tile(bias.ravel(), batch)
        lifs[name] = LIFReset(
            shape=shape,
            reset_interval=reset_interval,
            reset_offset=(pop.depth + 1) % reset_interval,
            name=name,
            **params,
        )
    for index, syn in enumerate(plan.synapses):
        out_port = source.s_out if syn.source == plan.input_name else lifs[syn.source].s_out
        target = lifs[syn.target]
        bits = GRADED_MESSAGE_BITS if syn.graded else 0
        qsyn = None if fixed is None else fixed.synapses[index]
        weight = syn.weight if qsyn is None else qsyn.weight
        if syn.kind == "conv" and not syn.sparse and batch == 1:
            kwargs = dict(syn.conv)
            if qsyn is not None:
                kwargs["weight_exp"] = qsyn.weight_exp
            proc = Conv(weight=weight, num_message_bits=bits, name=f"syn{index}", **kwargs)
            out_port.connect(proc.s_in)
            last = proc.a_out
            last_shape = proc.a_out.shape
        else:
            exp = 0 if qsyn is None else qsyn.weight_exp
            proc = matrix_synapse(
                syn, weight, exp, bits, f"syn{index}", plan, qsyn is not None, batch
            )
            flat(out_port).connect(proc.s_in)
            last = proc.a_out
            last_shape = proc.a_out.shape
            if qsyn is not None and qsyn.residual is not None:
                # A second synapse with a finer exponent beside it; Lava sums both into a_in.
                residual = matrix_synapse(
                    syn,
                    qsyn.residual,
                    qsyn.residual_exp,
                    bits,
                    f"syn{index}.residual",
                    plan,
                    True,
                    batch,
                )
                flat(out_port).connect(residual.s_in)
                port = residual.a_out
                if tuple(port.shape) != tuple(target.a_in.shape):
                    port = port.reshape(tuple(target.a_in.shape))
                port.connect(target.a_in)
        for hop in range(syn.extra_hops):
            size = int(np.prod(last_shape))
            # A sparse identity: a dense one would hold size² weights and cost size² per step.
            identity = scipy.sparse.identity(
                size, dtype=np.int32 if fixed is not None else np.float64, format="csr"
            )
            delay = Sparse(
                weights=identity, num_message_bits=GRADED_MESSAGE_BITS, name=f"syn{index}.hop{hop}"
            )
            flat(last).connect(delay.s_in)
            last, last_shape = delay.a_out, delay.a_out.shape
        if tuple(last_shape) != tuple(target.a_in.shape):
            last = last.reshape(tuple(target.a_in.shape))
        last.connect(target.a_in)
    return source, lifs


def flat(port: object) -> object:
    """A Lava port as the 1-D port a Dense or Sparse process connects to."""
    return port.flatten() if len(port.shape) > 1 else port


def matrix_synapse(
    syn: Synapse,
    weight: np.ndarray,
    exp: int,
    bits: int,
    name: str,
    plan: LavaPlan,
    fixed: bool,
    batch: int = 1,
) -> object:
    """A Lava Dense (or Sparse, for a conv lowered to a matrix or a batched network) process for
    `weight`."""
    from lava.proc.dense.process import Dense
    from lava.proc.sparse.process import Sparse

    kwargs = dict(weight_exp=exp) if fixed else {}
    if not syn.sparse and batch == 1:
        return Dense(weights=weight, num_message_bits=bits, name=name, **kwargs)
    matrix = batched_matrix(synapse_matrix(syn, weight, plan), batch)
    return Sparse(weights=matrix, num_message_bits=bits, name=name, **kwargs)


def synapse_matrix(syn: Synapse, weight: np.ndarray, plan: LavaPlan) -> object:
    """`weight` (laid out like syn.weight) as a scipy csr (N_out, N_in) in Lava flat order."""
    import scipy.sparse

    if syn.kind == "dense":
        return scipy.sparse.csr_matrix(weight)
    return conv_sparse_matrix(weight, syn.conv, plan.populations[syn.target].lava_shape)


def batched_matrix(matrix: object, batch: int) -> object:
    """`batch` copies of a csr matrix on the diagonal: sample b's inputs reach only its outputs."""
    import scipy.sparse

    if batch == 1:
        return matrix
    return scipy.sparse.block_diag([matrix] * batch, format="csr", dtype=matrix.dtype)
