"""The one interface every target implements and the one result type they return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import nir
import numpy as np


@dataclass
class RunResult:
    """What a backend produced for a batch of samples.

    `recorded[node]` is shaped (samples, time steps, *node shape), aligned so that step t of the
    output corresponds to step t of the input (Lava's one-step-per-synapse delay removed).
    """

    backend: str
    recorded: dict[str, np.ndarray]
    time_steps: int
    steps_per_sample: int  # simulator steps actually run per sample (T + pipeline depth on Lava)
    wall_s_per_sample: float
    extra: dict[str, object] = field(default_factory=dict)


class Target(Protocol):
    """A backend that executes a NIR graph on input sequences."""

    name: str

    def run(
        self, graph: nir.NIRGraph, inputs: np.ndarray, record: tuple[str, ...] = ()
    ) -> RunResult:
        """Run `inputs` shaped (samples, time steps, *input shape); record the Output node(s)
        and the named nodes."""
        ...
