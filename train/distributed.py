"""Multi-process training plumbing for `torchrun`: process group set-up, batch norm synchronised
across processes (also on the CPU, where torch's SyncBatchNorm refuses to run), reductions."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_functional
from torch import nn

from mksgn.lifetime import die_with_parent, exit_when_orphaned, skip_finalization_on_error


@dataclass(frozen=True)
class ProcessContext:
    """Where this process sits in the job: rank, world size, device, whether it set up the group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        """True when several processes train one model."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and shows progress."""
        return self.rank == 0


def environment_world_size() -> int:
    """WORLD_SIZE set by torchrun (1 when run directly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def environment_rank() -> int:
    """RANK set by torchrun (0 when run directly): only rank 0 reports."""
    return int(os.environ.get("RANK", "0"))


def start_processes(device: str) -> ProcessContext:
    """Join the torchrun process group (gloo on the CPU, nccl on CUDA) when WORLD_SIZE > 1."""
    world_size = environment_world_size()
    if world_size <= 1:
        return ProcessContext()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    owns_group = False
    if not dist.is_initialized():
        # A torchrun agent killed outright (SIGKILL, or a test's timeout) cannot stop its
        # workers, and a worker whose peer is gone waits in a collective forever: watch it, and
        # have the kernel end it where the watch cannot run (native code holding the GIL).
        exit_when_orphaned()
        die_with_parent(os.getppid())
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
        skip_finalization_on_error()
        owns_group = True
    return ProcessContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        owns_group=owns_group,
    )


def stop_processes(context: ProcessContext, finished: bool = True) -> None:
    """Leave the process group if this code created it, once every process has got here (one
    that leaves while another still writes can hang gloo's shutdown).

    After an error the group is left as it is: the others may never arrive, and destroying a
    gloo group whose peer has died joins gloo's threads while holding the GIL they wait for (a
    torchrun worker hung so for 28 minutes, its orphan watch unable to run). The process ends
    right after an error without finalization (lifetime.end_process), which frees nothing.
    """
    if finished and context.owns_group and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def peer_failure(error: BaseException) -> bool:
    """True for what a collective raises when another process of the job has ended (gloo raises
    a plain RuntimeError: "[.../gloo/transport/tcp/pair.cc:534] Connection closed by peer")."""
    return isinstance(error, dist.DistError) or (
        isinstance(error, RuntimeError) and "/gloo/" in str(error)
    )


def all_reduce_sum(values: torch.Tensor, context: ProcessContext) -> torch.Tensor:
    """Sum a tensor over processes (identity in a single process)."""
    if context.distributed:
        values = values.clone()
        dist.all_reduce(values)
    return values


def all_gather_rows(values: torch.Tensor, context: ProcessContext) -> torch.Tensor:
    """Concatenate per-process tensors along dim 0 (their lengths may differ)."""
    if not context.distributed:
        return values
    length = torch.tensor([values.shape[0]], dtype=torch.int64)
    lengths = [torch.zeros_like(length) for _ in range(context.world_size)]
    dist.all_gather(lengths, length)
    longest = int(max(int(n) for n in lengths))
    padded = torch.zeros((longest, *values.shape[1:]), dtype=values.dtype)
    padded[: values.shape[0]] = values
    gathered = [torch.zeros_like(padded) for _ in range(context.world_size)]
    dist.all_gather(gathered, padded)
    return torch.cat([part[: int(n)] for part, n in zip(gathered, lengths, strict=True)])


class DistributedStatistics:
    """Batch norm (mixed into BatchNorm1d or BatchNorm2d) whose training statistics cover the
    batch of every process, so N processes with batch B/N normalise exactly like one process with
    batch B. Works on the CPU (gloo).

    The statistics are all-reduced with the autograd-aware collective, so each process's backward
    pass also carries the gradient other processes' losses send through the shared statistics.
    State-dict keys equal torch's batch norms', so checkpoints do not depend on the process count.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise with global batch statistics in training, running statistics in eval."""
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        channels = x.shape[1]
        dims = (0, *range(2, x.ndim))  # every axis but the channels
        local_count = torch.tensor([x.numel() // channels], dtype=x.dtype, device=x.device).expand(
            channels
        )
        local = torch.stack([x.sum(dim=dims), (x * x).sum(dim=dims), local_count])
        total = dist_functional.all_reduce(local)
        count = total[2, 0]
        mean = total[0] / count
        variance = (total[1] / count - mean * mean).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (
                    1.0 / float(self.num_batches_tracked)
                    if self.momentum is None
                    else self.momentum
                )
                unbiased = variance * (count / (count - 1).clamp_min(1.0))
                self.running_mean.mul_(1 - momentum).add_(mean.detach() * momentum)
                self.running_var.mul_(1 - momentum).add_(unbiased.detach() * momentum)
        shape = (1, channels, *[1] * (x.ndim - 2))
        normalised = (x - mean.view(shape)) * torch.rsqrt(variance.view(shape) + self.eps)
        if self.affine:
            normalised = normalised * self.weight.view(shape) + self.bias.view(shape)
        return normalised


class DistributedBatchNorm2d(DistributedStatistics, nn.BatchNorm2d):
    """BatchNorm2d with statistics over every process's batch (DistributedStatistics)."""


class DistributedBatchNorm1d(DistributedStatistics, nn.BatchNorm1d):
    """BatchNorm1d with statistics over every process's batch (DistributedStatistics)."""


def synchronise_batch_norm(module: nn.Module, device: str) -> nn.Module:
    """Replace every BatchNorm1d/2d by a process-synchronised one (torch's SyncBatchNorm on
    CUDA)."""
    if device == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    distributed = {nn.BatchNorm2d: DistributedBatchNorm2d, nn.BatchNorm1d: DistributedBatchNorm1d}
    for name, child in module.named_children():
        if type(child) in distributed:
            replacement = distributed[type(child)](
                child.num_features,
                child.eps,
                child.momentum,
                child.affine,
                child.track_running_stats,
            )
            replacement.load_state_dict(child.state_dict())
            replacement.to(next(iter(child.state_dict().values())).device)
            setattr(module, name, replacement)
        else:
            synchronise_batch_norm(child, device)
    return module
