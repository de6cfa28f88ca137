"""An exported Base-SGN runs on Lava (float) spike for spike like the snnTorch reference, on every
spiking layer and on the readout (MK-SGN: tests/test_emulator.py, whose Lava run of it is shared)."""

from __future__ import annotations

import numpy as np
import pytest
from model_fixtures import joints, node_major_input, spiking_nodes, spiking_student

from mksgn.convert.nir_export import student_to_nir
from mksgn.targets.lava import LavaTarget
from mksgn.targets.reference import ReferenceTarget


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["base-sgn"])
def test_lava_float_equals_the_reference_on_every_layer(name: str) -> None:
    model = spiking_student(name)
    graph = student_to_nir(model)
    spiking = spiking_nodes(graph)
    inputs = node_major_input(model, joints(batch=2))
    reference = ReferenceTarget().run(graph, inputs, spiking)
    lava = LavaTarget(timeout_s=240).run(graph, inputs, spiking)
    for node in spiking:
        assert reference.recorded[node].sum() > 0, f"{node} is silent: the test would prove little"
        np.testing.assert_array_equal(lava.recorded[node], reference.recorded[node], err_msg=node)
    output = next(iter(graph.outputs))
    np.testing.assert_allclose(lava.recorded[output], reference.recorded[output], rtol=0, atol=1e-5)
