"""Batch-norm statistics that match the weights being evaluated ("precise BN").

A batch norm's running statistics are an exponential average (momentum 0.1) over the batches
of training, starting from mean 0 and variance 1. After a short run they still carry that start
and lag the weights: a 3-epoch MK-SGN on 60 samples (12 updates) kept a running variance near
0.3 where its inputs varied by 0.002-0.08, so evaluation divided its currents by up to 12x more
than training did, and layers 2-6 fell silent (firing 0.000 against 0.15 in training). Before
every evaluation the statistics are recomputed as the plain average over a fixed set of
training batches at the current weights, so evaluation (and the folded, deployed network) sees
the normalisation training saw.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@torch.no_grad()
def recalibrate_batch_norm(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    max_samples: int,
) -> int:
    """Reset every batch norm's running statistics to their average over the first
    `max_samples` samples of `batches` (forward passes in training mode); returns the samples
    used. A model without batch norm, or `max_samples` 0, is left as it is."""
    norms = [module for module in model.modules() if isinstance(module, _BatchNorm)]
    if not norms or max_samples <= 0:
        return 0
    momenta = [norm.momentum for norm in norms]
    was_training = model.training
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: every batch counts equally
    model.train()
    seen = 0
    try:
        for inputs, _ in batches:
            if seen >= max_samples:
                break
            model(inputs.to(device))
            seen += len(inputs)
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        model.train(was_training)
    return seen
