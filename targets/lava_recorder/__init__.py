"""Lava processes that record a population into a .npy file instead of a Monitor.

Lava's `Monitor.get_data()` reads its buffer through `Var.get`, which sends an array to the host
one element per channel message (lava-nc 0.10, PyLoihiProcessModel._get_var: "FIXME: send a whole
vector"). Recording every layer of the quick demo's MK-SGN that way took 80 s per sample, against
12 s for the run itself. These recorders keep their buffer inside their own process and save it
with NumPy after the last step, which Lava's blocking `run` waits for.

A package of its own because Lava's compiler imports every module beside a process's module while
looking for process models; here that is this file only.
"""

from __future__ import annotations

import os

import numpy as np
from lava.magma.core.decorator import implements, requires
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, RefPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class SpikeRecorder(AbstractProcess):
    """Receives a population's output every step; saves (steps, *shape) float32 to `path`
    (spikes and Loihi's at most 24-bit graded payloads are exact in float32)."""

    def __init__(self, shape: tuple[int, ...], steps: int, path: str) -> None:
        super().__init__(shape=tuple(shape), steps=int(steps), path=str(path))
        self.a_in = InPort(shape=tuple(shape))


class VoltageRecorder(AbstractProcess):
    """Reads a population's voltage Var after every step; saves (steps, *shape) float64."""

    def __init__(self, shape: tuple[int, ...], steps: int, path: str) -> None:
        super().__init__(shape=tuple(shape), steps=int(steps), path=str(path))
        self.ref = RefPort(shape=tuple(shape))


class BufferedRecorderModel(PyLoihiProcessModel):
    """Keeps every step's values in its own buffer and saves it to `path` after the last step."""

    buffer_dtype: type = np.float64

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        shape, steps = proc_params["shape"], proc_params["steps"]
        self.buffer = np.zeros((steps, *shape), dtype=self.buffer_dtype)
        self.path = proc_params["path"]

    def store(self, values: np.ndarray) -> None:
        """Keep this step's values; once the last step's are in, write the buffer atomically."""
        self.buffer[self.time_step - 1] = values
        if self.time_step == len(self.buffer):
            partial = f"{self.path}.partial.npy"
            np.save(partial, self.buffer)
            os.replace(partial, self.path)


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
class PySpikeRecorderModel(BufferedRecorderModel):
    """Float and fixed point alike: the channel carries the sender's dtype."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    buffer_dtype = np.float32

    def run_spk(self) -> None:
        """Store this step's input."""
        self.store(self.a_in.recv())


@implements(proc=VoltageRecorder, protocol=LoihiProtocol)
@requires(CPU)
class PyVoltageRecorderModel(BufferedRecorderModel):
    """Reads the Var in the management phase, after the neurons updated it (as Monitor does)."""

    ref: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, float)

    def post_guard(self) -> bool:
        """Read after every step."""
        return True

    def run_post_mgmt(self) -> None:
        """Store the voltage after this step."""
        self.store(self.ref.read())
