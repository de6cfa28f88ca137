"""Signs that a run's figures describe a network that ignores its input: silent spiking layers,
one output for every sample, one predicted class for every sample.

A layer that never fires passes only biases on, so accuracy (the readout bias picks one class)
and energy (no spikes, no accumulates) look fine while meaning nothing. Every command that
prints results (evaluate, simulate, energy, report) lists these warnings.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# Below this many spikes per neuron per step a layer counts as silent (one spike in 10,000).
SILENT_RATE = 1e-4
# Fewer samples than this can share one class by chance; more cannot, for any useful model.
CONSTANT_PREDICTION_SAMPLES = 10


def silent_layer_warnings(firing_rates: Mapping[str, float | None]) -> list[str]:
    """One warning per spiking layer whose firing rate is below SILENT_RATE."""
    return [
        f"{name} is silent (firing rate {rate:.2g} spikes per neuron per step): the layers after "
        "it see only biases, so these figures describe a network that ignores its input; train "
        "it longer or check the model"
        for name, rate in firing_rates.items()
        if rate is not None and rate < SILENT_RATE
    ]


def output_warnings(outputs: np.ndarray | None, predictions: np.ndarray | None) -> list[str]:
    """Warnings when every sample gives the same output (samples, ...) or, with at least
    CONSTANT_PREDICTION_SAMPLES samples, the same predicted class."""
    warnings = []
    if outputs is not None and len(outputs) > 1:
        flat = np.asarray(outputs).reshape(len(outputs), -1)
        if np.all(flat == flat[:1]):
            warnings.append(
                f"all {len(flat)} samples give exactly the same output: the network ignores its "
                "input (a silent layer?), so its accuracy is chance"
            )
            return warnings
    if predictions is not None and len(predictions) >= CONSTANT_PREDICTION_SAMPLES:
        classes = np.unique(np.asarray(predictions))
        if len(classes) == 1:
            warnings.append(
                f"all {len(predictions)} samples are predicted as class {int(classes[0])}: "
                "the network does not tell the classes apart"
            )
    return warnings
