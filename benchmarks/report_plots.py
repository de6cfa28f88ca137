"""The plots of `mksgn report`, drawn with matplotlib's Agg canvas from the report.json object
(and the recorded spikes, for the raster)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mksgn.benchmarks.report_markdown import number

RASTER_BACKENDS = ("snntorch", "lava-float")  # required: the raster compares these two
RASTER_NEURONS = 48  # neurons shown per layer, so the plot stays legible


def new_figure(width: float, height: float):
    """A figure drawn by the Agg canvas (no pyplot: no global state, no display needed)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def plot_training(report: dict[str, Any], path: Path) -> None:
    """Loss and accuracy per epoch, one line per model."""
    figure = new_figure(10, 4)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for index, model in enumerate(report["models"].values()):
        history = model["history"]
        epochs = [record["epoch"] for record in history]
        color = f"C{index}"
        loss_axes.plot(
            epochs, [r["train_loss"] for r in history], color=color, label=model["label"]
        )
        accuracy_axes.plot(
            epochs, [r["test_acc"] for r in history], color=color, label=f"{model['label']} test"
        )
        accuracy_axes.plot(
            epochs,
            [r["train_acc"] for r in history],
            color=color,
            linestyle="--",
            label=f"{model['label']} train",
        )
    loss_axes.set(xlabel="epoch", ylabel="training loss (incl. distillation terms)")
    accuracy_axes.set(xlabel="epoch", ylabel="top-1", ylim=(0, 1))
    loss_axes.legend()
    accuracy_axes.legend(fontsize="small")
    figure.savefig(path, format="png")


def plot_firing_rates(report: dict[str, Any], path: Path) -> None:
    """Firing rate per spiking layer of the simulated MK-SGN, one bar per backend."""
    sim = report["simulation"]
    nodes = sim["spiking_layers"]
    backends = list(sim["firing_rates"])
    figure = new_figure(max(6, 1.2 * len(nodes) + 2), 4)
    axes = figure.subplots()
    width = 0.8 / max(len(backends), 1)
    positions = np.arange(len(nodes))
    for index, backend in enumerate(backends):
        rates = [sim["firing_rates"][backend].get(node, 0.0) for node in nodes]
        axes.bar(positions + index * width, rates, width, label=backend)
    axes.set_xticks(positions + width * (len(backends) - 1) / 2, nodes, rotation=30, ha="right")
    axes.set(
        ylabel="spikes per neuron per step", title=f"MK-SGN firing rate, {sim['samples']} samples"
    )
    axes.legend()
    figure.savefig(path, format="png")


def plot_energy(report: dict[str, Any], path: Path) -> None:
    """Energy per layer per sample, MK-SGN (per backend) beside the GCN teacher, log scale."""
    energy = report["energy"]
    figure = new_figure(11, 4.5)
    student_axes, teacher_axes = figure.subplots(
        1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]}
    )
    backends = list(energy["backends"])
    names = [layer["name"] for layer in energy["backends"][backends[0]]["layers"]]
    width = 0.8 / len(backends)
    positions = np.arange(len(names))
    for index, backend in enumerate(backends):
        layers = {layer["name"]: layer for layer in energy["backends"][backend]["layers"]}
        # A layer that received no spike costs 0 mJ: no bar on the log axis (not a fake floor).
        values = [layers[name]["energy_mj"] or np.nan for name in names]
        student_axes.bar(positions + index * width, values, width, label=backend)
    student_axes.set_xticks(
        positions + width * (len(backends) - 1) / 2, names, rotation=30, ha="right"
    )
    student_axes.set(
        yscale="log",
        ylabel="mJ per sample",
        title="MK-SGN, from each backend's spikes (no bar: 0 mJ)",
    )
    student_axes.legend(fontsize="small")
    teacher = energy["teacher"]
    if teacher["layers"]:
        teacher_names = [layer["name"] for layer in teacher["layers"]]
        teacher_axes.bar(
            teacher_names, [layer["energy_mj"] or np.nan for layer in teacher["layers"]], color="C7"
        )
        teacher_axes.tick_params(axis="x", rotation=30)
    elif teacher["energy_mj"] is not None:
        teacher_axes.bar(["whole model"], [teacher["energy_mj"]], color="C7")
    teacher_axes.set(
        title=f"GCN teacher (dense MACs), total {number(teacher['energy_mj'], '.3g')} mJ"
    )
    figure.suptitle(f"energy per layer, preset {energy['preset']}")
    figure.savefig(path, format="png")


def raster_rows(arrays: dict[str, np.ndarray], nodes: list[str], sample: int) -> list[np.ndarray]:
    """Per layer, the neurons shown: evenly spread over those that spiked in the sample in either
    backend (the most active ones fire at every one of the few steps and would show nothing)."""
    rows = []
    for node in nodes:
        activity = sum(
            a[node][sample].reshape(a[node].shape[1], -1).sum(0) for a in arrays.values()
        )
        active = np.flatnonzero(activity)
        if len(active) > RASTER_NEURONS:
            active = active[np.linspace(0, len(active) - 1, RASTER_NEURONS).round().astype(int)]
        rows.append(active if len(active) else np.arange(min(RASTER_NEURONS, activity.size)))
    return rows


def plot_raster(
    report: dict[str, Any], spikes: dict[str, dict[str, np.ndarray]], path: Path
) -> None:
    """Spikes of sample 0, snnTorch beside Lava float: per layer some of its active neurons
    (rows) over the time steps (columns); differing entries are marked in the Lava panel."""
    nodes = report["simulation"]["spiking_layers"]
    shown = {backend: spikes[backend] for backend in RASTER_BACKENDS}
    rows = raster_rows(shown, nodes, 0)
    figure = new_figure(9, 6)
    panels = figure.subplots(1, 2, sharey=True)
    stacked = {}
    for backend, arrays in shown.items():
        blocks = [
            arrays[node][0].reshape(arrays[node].shape[1], -1)[:, chosen].T
            for node, chosen in zip(nodes, rows, strict=True)
        ]
        stacked[backend] = np.concatenate(blocks, axis=0) if blocks else np.zeros((0, 1))
    boundaries = np.cumsum([len(chosen) for chosen in rows])
    differs = stacked["snntorch"] != stacked["lava-float"]
    for axes, backend in zip(panels, RASTER_BACKENDS, strict=True):
        # An image, not markers: a few hundred rows in a few hundred pixels would merge markers.
        axes.imshow(
            stacked[backend], aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest"
        )
        if backend == "lava-float" and differs.any():
            bad_neuron, bad_step = np.nonzero(differs)
            axes.scatter(bad_step, bad_neuron, marker="o", s=12, facecolors="none", color="red")
        for boundary in boundaries[:-1]:
            axes.axhline(boundary - 0.5, color="C0", linewidth=1.2)
        axes.set(
            xlabel="time step",
            title=f"{backend}"
            + (f" ({int(differs.sum())} entries differ)" if backend != "snntorch" else ""),
            xlim=(-0.5, stacked[backend].shape[1] - 0.5),
            ylim=(max(int(boundaries[-1]) if len(boundaries) else 1, 1) - 0.5, -0.5),
        )
    starts = np.concatenate([[0], boundaries[:-1]]) if len(boundaries) else []
    panels[0].set_yticks(
        [start + len(chosen) / 2 for start, chosen in zip(starts, rows, strict=True)], nodes
    )
    figure.suptitle(f"sample 0: up to {RASTER_NEURONS} of the active neurons of each layer")
    figure.savefig(path, format="png")
