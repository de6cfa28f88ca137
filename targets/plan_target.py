"""What Lava and its emulator share as targets: a NIR graph lowered to a LavaPlan (or a converted
folder's stored plan) and run in float or Loihi 2 fixed point, some samples side by side."""

from __future__ import annotations

import nir
import numpy as np

from mksgn.convert.artifact import Artifact
from mksgn.convert.lava_graph import build_plan
from mksgn.convert.lava_plan import LavaPlan
from mksgn.convert.nir_nodes import DEFAULT_DT
from mksgn.errors import MksgnError
from mksgn.targets.base import RunResult


class PlanTarget:
    """A target that runs lowered plans; subclasses name themselves and implement `run_plan`."""

    names: tuple[str, str] = ("", "")  # the backend's name in float, in fixed point
    default_batch_size = 1

    def __init__(
        self,
        fixed_point: bool,
        batch_size: int | None = None,
        dt: float = DEFAULT_DT,
        input_abs_max: float | None = None,
        artifact: Artifact | None = None,
    ) -> None:
        """batch_size is how many samples one network runs side by side (None: the target's
        default); input_abs_max fixes the input range quantisation assumes (None: that of the
        inputs run, a shard passes the whole data's so that every shard quantises alike);
        artifact, a converted folder, supplies the plan and, in fixed point, its stored integers
        (the graph passed to `run` is then the artifact's)."""
        if batch_size is not None and batch_size < 1:
            raise MksgnError(f"batch size must be at least 1, got {batch_size}")
        self.fixed_point = fixed_point
        self.batch_size = self.default_batch_size if batch_size is None else int(batch_size)
        self.dt = dt
        self.input_abs_max = input_abs_max
        self.artifact = artifact
        self.name = self.names[fixed_point]

    def run(
        self, graph: nir.NIRGraph, inputs: np.ndarray, record: tuple[str, ...] = ()
    ) -> RunResult:
        """Run `inputs` (samples, T, *input shape): the artifact's plan, else `graph` lowered."""
        plan = self.artifact.plan if self.artifact else build_plan(graph, self.dt)
        return self.run_plan(plan, inputs, record)

    def run_plan(
        self, plan: LavaPlan, inputs: np.ndarray, record: tuple[str, ...] = ()
    ) -> RunResult:
        """Run an already lowered plan."""
        raise NotImplementedError
