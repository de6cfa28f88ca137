"""`mksgn report RUN_DIR`: what a demo run produced, gathered into report.json, report.md and plots.

The run directory is the layout `mksgn demo` writes. Required (an `Error:` names whichever are
missing): summary.json with the accuracy, parity and energy sections; metrics.jsonl of every
trained model the summary lists (RUN_DIR/<model>/); spikes-snntorch.npz and spikes-lava-float.npz
(the spike raster). Optional (the report says they are absent): the Lava fixed-point run
(spikes-lava-fixed.npz and the summary's fixed_point section), the per-model evaluation, the
teacher's MACs per layer and the stage timings.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mksgn import run_files
from mksgn.atomic import atomic_directory, current_umask
from mksgn.benchmarks.prices import PJ_PER_MJ
from mksgn.diagnostics import silent_layer_warnings
from mksgn.errors import MksgnError
from mksgn.train.history import read_history

SUMMARY = "summary.json"
MODEL_LABELS = {"gcn": "GCN teacher", "base-sgn": "Base-SGN", "mk-sgn": "MK-SGN"}
BACKENDS = ("snntorch", "lava-float", "lava-fixed")
RASTER_BACKENDS = ("snntorch", "lava-float")  # required: the raster compares these two
SUMMARY_KEYS = ("accuracy", "parity_per_layer", "parity_identical", "energy", "lava_samples")
PLOTS = {
    "training": "training-curves.png",
    "firing_rates": "firing-rates.png",
    "energy": "energy-per-layer.png",
    "raster": "spike-raster.png",
}
RASTER_NEURONS = 48  # neurons shown per layer, so the plot stays legible


def spikes_name(backend: str) -> str:
    """File name of a backend's recorded spikes in a run directory."""
    return f"spikes-{backend}.npz"


def read_json(path: Path) -> Any:
    """A JSON file, or an Error naming it."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise MksgnError(f"{path} is not readable JSON ({error})") from None


def read_spikes(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a spikes-<backend>.npz (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            # mksgn_* members (RUN_KEY, the shard key) describe the run; they are not layers
            return {name: archive[name] for name in archive.files if not name.startswith("mksgn_")}
    except (OSError, ValueError) as error:
        raise MksgnError(f"{path} is not a readable .npz file ({error})") from None


def missing_pieces(run_dir: Path) -> tuple[list[str], dict[str, Any] | None]:
    """The required pieces absent from `run_dir` (paths relative to it), and the summary."""
    summary_path = run_dir / SUMMARY
    if not summary_path.is_file():
        return [SUMMARY], None
    summary = read_json(summary_path)
    if not isinstance(summary, dict):
        raise MksgnError(f"{summary_path} does not hold a JSON object")
    missing = [f"{SUMMARY}: '{key}'" for key in SUMMARY_KEYS if key not in summary]
    for model in summary.get("accuracy", {}):
        if not (run_dir / model / run_files.METRICS).is_file():
            missing.append(f"{model}/{run_files.METRICS}")
    missing += [
        spikes_name(backend)
        for backend in RASTER_BACKENDS
        if not (run_dir / spikes_name(backend)).is_file()
    ]
    return missing, summary


def spiking_nodes(spikes: dict[str, np.ndarray], summary: dict[str, Any]) -> list[str]:
    """Recorded nodes that spike (binary), in the order of the summary's parity table."""
    ordered = [node for node in summary["parity_per_layer"] if node in spikes]
    return [
        node for node in ordered if spikes[node].size and np.isin(spikes[node], (0.0, 1.0)).all()
    ]


def model_section(run_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """Per trained model: accuracy, size and the training history."""
    evaluation = summary.get("evaluation", {})
    models = {}
    for model, top1 in summary["accuracy"].items():
        history = read_history(run_dir / model / run_files.METRICS)
        result = evaluation.get(model, {})
        models[model] = {
            "label": MODEL_LABELS.get(model, model),
            "top1": float(top1),
            "top5": result.get("top5"),
            "parameters": result.get("parameters"),
            "dense_macs_per_sample": result.get("dense_macs_per_sample"),
            "firing_rates": result.get("firing_rates", {}),
            "epochs": len(history),
            "training_s": float(sum(record.get("seconds", 0.0) for record in history)),
            "history": [
                {
                    key: record.get(key)
                    for key in ("epoch", "train_loss", "train_acc", "test_acc", "seconds")
                }
                for record in history
            ],
        }
    return models


def energy_section(summary: dict[str, Any]) -> dict[str, Any]:
    """Per backend: per-sample totals, per-layer counts and the reduction; the teacher's MACs."""
    reports = summary["energy"]
    first = next(iter(reports.values()))
    teacher = first.get("teacher") or {}
    per_layer = summary.get("teacher_macs_per_layer")
    pj_per_mac = float(first["pj_per_mac"])
    return {
        "preset": first["preset"],
        "pj_per_ac": first["pj_per_ac"],
        "pj_per_mac": pj_per_mac,
        "pj_per_update": first["pj_per_update"],
        "teacher": {
            "macs": teacher.get("macs"),
            "energy_mj": teacher.get("energy_mj"),
            "layers": None
            if per_layer is None
            else [
                {
                    "name": name,
                    "macs": float(macs),
                    "energy_mj": float(macs) * pj_per_mac / PJ_PER_MJ,
                }
                for name, macs in per_layer.items()
            ],
        },
        "published": first.get("published"),
        "backends": {
            backend: {
                "per_sample": report["per_sample"],
                "paper_style": report.get("paper_style"),
                "reduction_percent": report["reduction_percent"],
                "layers": [
                    {
                        key: layer[key]
                        for key in ("name", "kind", "acs", "macs", "input_rate", "energy_mj")
                    }
                    for layer in report["layers"]
                ],
            }
            for backend, report in reports.items()
        },
    }


def loihi2_section(run_dir: Path) -> dict[str, Any] | None:
    """The Loihi 2 resource report `mksgn convert` stored in the run's converted folder."""
    for folder in ("lava-fixed", "lava"):
        manifest = run_dir / folder / run_files.MANIFEST
        if manifest.is_file():
            resources = read_json(manifest).get("loihi2")
            if isinstance(resources, dict) and "layers" in resources:
                return {"folder": folder, **resources}
    return None


def run_warnings(summary: dict[str, Any], firing: dict[str, dict[str, float]]) -> list[str]:
    """Silent layers and constant predictions (mksgn.diagnostics) of every model evaluated and
    every backend run, each prefixed with where it was seen."""
    found = []
    for model, result in summary.get("evaluation", {}).items():
        warnings = result.get("warnings")
        if warnings is None:  # an evaluation saved before warnings existed
            warnings = silent_layer_warnings(result.get("firing_rates", {}))
        found += [f"{MODEL_LABELS.get(model, model)} (evaluate): {w}" for w in warnings]
    for backend, rates in firing.items():
        found += [f"{backend} run: {w}" for w in silent_layer_warnings(rates)]
    return found


def gather(run_dir: Path) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """The report.json object of a run directory, and the spikes of each backend found."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MksgnError(f"run directory {run_dir} does not exist")
    missing, summary = missing_pieces(run_dir)
    if missing:
        raise MksgnError(
            f"{run_dir} lacks what the report needs: {', '.join(missing)} "
            "(run 'mksgn demo --out DIR' to produce a complete run directory)"
        )
    assert summary is not None
    spikes = {
        backend: read_spikes(run_dir / spikes_name(backend))
        for backend in BACKENDS
        if (run_dir / spikes_name(backend)).is_file()
    }
    absent = []
    fixed = summary.get("fixed_point")
    if fixed is None or "lava-fixed" not in spikes:
        absent.append("Lava fixed-point run (spikes-lava-fixed.npz and summary 'fixed_point')")
        fixed = None
    for key, what in (
        ("evaluation", "per-model evaluation (top-5, parameters, firing rates)"),
        ("teacher_macs_per_layer", "the teacher's MACs per layer"),
        ("stage_seconds", "stage timings"),
    ):
        if key not in summary:
            absent.append(what)
    nodes = [
        node for node in spiking_nodes(spikes["snntorch"], summary) if node in spikes["lava-float"]
    ]
    firing = {
        backend: {
            node: float(arrays[node].mean(dtype=np.float64)) for node in nodes if node in arrays
        }
        for backend, arrays in spikes.items()
    }
    backends = summary.get("backends", {})
    loihi2 = loihi2_section(run_dir)
    if loihi2 is None:
        absent.append("Loihi 2 resources (a converted folder lava-fixed/ or lava/ with them)")
    report = {
        "run_dir": str(run_dir),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "models": model_section(run_dir, summary),
        "simulation": {
            "samples": int(summary["lava_samples"]),
            "labels": summary.get("lava_labels"),
            "backends": {
                backend: {
                    key: backends.get(backend, {}).get(key)
                    for key in ("accuracy", "wall_s_per_sample", "steps_per_sample")
                }
                for backend in summary["energy"]
            },
            "spiking_layers": nodes,
            "firing_rates": firing,
        },
        "parity": {
            "identical": bool(summary["parity_identical"]),
            "per_layer": summary["parity_per_layer"],
        },
        "fixed_point": None
        if fixed is None
        else {
            "agreement_per_layer": fixed["agreement_per_layer"],
            "mean_agreement": fixed["mean_agreement"],
            "prediction_agreement": fixed.get("prediction_agreement"),
            "accuracy": backends.get("lava-fixed", {}).get("accuracy"),
        },
        "energy": energy_section(summary),
        "loihi2": loihi2,
        "timings": {
            "total_s": summary.get("seconds"),
            "stages_s": summary.get("stage_seconds"),
            "training_s": {},
        },
        "files": {"markdown": "report.md", "json": "report.json", "plots": dict(PLOTS)},
        "absent": absent,
        "warnings": run_warnings(summary, firing),
    }
    report["timings"]["training_s"] = {
        model: section["training_s"] for model, section in report["models"].items()
    }
    return report, spikes


# ---------------------------------------------------------------------------------------------
# report.md


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def number(value: Any, spec: str = ".4g") -> str:
    """A figure for a table, or a dash when absent."""
    return "–" if value is None else format(value, spec)


def percent(value: Any, digits: int = 1) -> str:
    """A fraction as a percentage, or a dash."""
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def loihi2_markdown(resources: dict[str, Any]) -> list[str]:
    """The Loihi 2 resource section (docs/loihi2-resources.md says how it is counted)."""
    lines = [
        f"## Loihi 2 resources ({resources['folder']}/, at 8-bit weights)",
        "",
        f"{resources['cores']} neuro cores on {resources['chips']} chip(s), "
        f"{resources['neurons']:,} neurons, {resources['synapses']:,} synapses, "
        f"{resources['synaptic_memory_bits'] / 8 / 2**20:.1f} MiB of synaptic memory "
        "(limits and sources: docs/loihi2-resources.md).",
        "",
    ]
    rows = [
        [
            layer["layer"],
            f"{layer['neurons']:,}",
            f"{layer['synapses']:,}",
            f"{layer['synaptic_memory_bits'] / 8 / 1024:,.1f}",
            f"{layer['max_fan_in']:,}",
            f"{layer['max_fan_out']:,}",
            str(layer["cores"]),
        ]
        for layer in resources["layers"]
    ]
    header = ["layer", "neurons", "synapses", "memory KiB", "fan-in", "fan-out", "cores"]
    lines += table(header, rows)
    lines += [f"- limit: {violation}" for violation in resources["violations"]]
    return [*lines, ""]


def render_markdown(report: dict[str, Any]) -> str:
    """report.md: the tables, with the plots linked."""
    sim, energy, fixed = report["simulation"], report["energy"], report["fixed_point"]
    backends = list(energy["backends"])
    lines = [
        "# mksgn report",
        "",
        f"Run directory `{report['run_dir']}`, report written {report['created']}.",
        "",
    ]
    if report.get("warnings"):
        lines += ["## Warnings", ""]
        lines += [f"- {warning}" for warning in report["warnings"]]
        lines.append("")
    lines += [
        "## Accuracy per model (whole test split, snnTorch)",
        "",
    ]
    lines += table(
        ["model", "top-1", "top-5", "parameters", "dense MACs / sample", "epochs", "training (s)"],
        [
            [
                m["label"],
                percent(m["top1"]),
                percent(m["top5"]),
                number(m["parameters"], ","),
                number(m["dense_macs_per_sample"], ","),
                str(m["epochs"]),
                f"{m['training_s']:.1f}",
            ]
            for m in report["models"].values()
        ],
    )
    lines += [f"![training curves]({PLOTS['training']})", ""]
    lines += [f"## MK-SGN on {sim['samples']} test samples, per backend", ""]
    lines += table(
        ["backend", "top-1", "s / sample", "simulator steps / sample"],
        [
            [
                backend,
                percent(row["accuracy"]),
                number(row["wall_s_per_sample"], ".3g"),
                number(row["steps_per_sample"], "d"),
            ]
            for backend, row in sim["backends"].items()
        ],
    )
    parity = report["parity"]
    lines += [
        "## Spike parity per layer",
        "",
        "Fraction of (sample, step, neuron) entries equal: Lava float against the snnTorch "
        "reference ("
        + ("identical on every layer" if parity["identical"] else "**they differ**")
        + "), and Lava fixed point against Lava float.",
        "",
    ]
    fixed_layers = {} if fixed is None else fixed["agreement_per_layer"]
    lines += table(
        ["layer", "firing rate (snntorch)", "lava-float = snntorch", "lava-fixed = lava-float"],
        [
            [
                node,
                number(sim["firing_rates"].get("snntorch", {}).get(node), ".4f"),
                percent(value, 2),
                percent(fixed_layers.get(node), 2) if fixed is not None else "absent",
            ]
            for node, value in parity["per_layer"].items()
        ],
    )
    lines += ["## Fixed-point agreement", ""]
    if fixed is None:
        lines += ["The Lava fixed-point run is absent from this run directory.", ""]
    else:
        lines += [
            f"Lava fixed point (Loihi 2 arithmetic) reproduces {percent(fixed['mean_agreement'])} "
            "of Lava float's spike entries (mean over the spiking layers); it predicts the same "
            f"class on {percent(fixed['prediction_agreement'])} of the samples, top-1 "
            f"{percent(fixed['accuracy'])}.",
            "",
        ]
    lines += [f"![firing rate per layer]({PLOTS['firing_rates']})", ""]
    lines += [
        f"## Energy per layer (preset {energy['preset']}: {energy['pj_per_ac']} pJ per AC, "
        f"{energy['pj_per_mac']} pJ per MAC, {energy['pj_per_update']} pJ per neuron update)",
        "",
        "MK-SGN, counted from each backend's spikes (per sample):",
        "",
    ]
    names = [layer["name"] for layer in energy["backends"][backends[0]]["layers"]]
    by_backend = {
        b: {layer["name"]: layer for layer in energy["backends"][b]["layers"]} for b in backends
    }
    first = by_backend[backends[0]]
    lines += table(
        ["layer", "kind", "input rate", "ACs", "MACs", *[f"mJ ({b})" for b in backends]],
        [
            [
                name,
                first[name]["kind"],
                number(first[name]["input_rate"], ".4f"),
                number(first[name]["acs"], ",.0f"),
                number(first[name]["macs"], ",.0f"),
                *[number(by_backend[b].get(name, {}).get("energy_mj"), ".3e") for b in backends],
            ]
            for name in names
        ],
    )
    teacher = energy["teacher"]
    if teacher["layers"] is None:
        lines += ["The teacher's MACs per layer are absent from this run directory.", ""]
    else:
        lines += ["GCN teacher (dense MACs, per sample):", ""]
        lines += table(
            ["layer", "MACs", "mJ"],
            [
                [layer["name"], number(layer["macs"], ",.0f"), number(layer["energy_mj"], ".3e")]
                for layer in teacher["layers"]
            ],
        )
    lines += [f"![energy per layer]({PLOTS['energy']})", "", "## Per-sample totals", ""]
    lines += table(
        ["backend", "ACs", "MACs", "neuron updates", "MK-SGN mJ", "teacher mJ", "reduction"],
        [
            [
                backend,
                number(row["per_sample"]["acs"], ",.0f"),
                number(row["per_sample"]["macs"], ",.0f"),
                number(row["per_sample"]["neuron_updates"], ",.0f"),
                number(row["per_sample"]["energy_mj"], ".4g"),
                number(teacher["energy_mj"], ".4g"),
                "–" if row["reduction_percent"] is None else f"{row['reduction_percent']:.1f} %",
            ]
            for backend, row in energy["backends"].items()
        ],
    )
    lines += [
        "ACs and MACs are the exact deployed counts (each spike, or non-zero input, times the "
        "non-zero synapses it reaches in the folded network), priced per operation.",
        "",
    ]
    paper_rows = [
        [
            f"MK-SGN, {backend} spikes",
            number(row["paper_style"]["sop"], ",.0f"),
            number(row["paper_style"]["mac_flops"], ",.0f"),
            number(row["paper_style"]["energy_mj"], ".4g"),
            "measured",
        ]
        for backend, row in energy["backends"].items()
        if row.get("paper_style")
    ]
    published = energy.get("published") or {}
    if paper_rows:
        paper_rows.append(
            [
                "MK-SGN (Zheng et al. 2024), NTU60",
                "",
                "",
                number(published.get("mk_sgn_ntu60_mj")),
                "published",
            ]
        )
        paper_rows += [
            [
                f"{gcn['model']}, {gcn['streams']} streams",
                "",
                number(gcn["gflops_per_stream"] * 1e9 * gcn["streams"], ",.0f"),
                number(gcn["energy_mj"], ".3g"),
                "published",
            ]
            for gcn in published.get("gcns", [])
        ]
        lines += ["## Paper-style energy (as the MK-SGN paper counts)", ""]
        lines += [
            "E = pJ/AC × Σ SOP + pJ/MAC × FLOPs of the non-spiking layers, SOP = input rate × T × "
            "FLOPs of the factorised layer (channel mixing + node aggregation, as GCN papers "
            "count). Published rows are the papers' figures, not measured here.",
            "",
        ]
        lines += table(["model", "SOP", "MAC FLOPs", "mJ / sample", "source"], paper_rows)
    if report.get("loihi2"):
        lines += loihi2_markdown(report["loihi2"])
    lines += [
        "## Spike raster (sample 0, snnTorch vs Lava float)",
        "",
        f"![spike raster]({PLOTS['raster']})",
        "",
        "## Timings",
        "",
    ]
    timings = report["timings"]
    stage_rows = [[name, f"{seconds:.1f}"] for name, seconds in (timings["stages_s"] or {}).items()]
    stage_rows.append(["whole run", number(timings["total_s"], ".1f")])
    lines += table(["stage", "seconds"], stage_rows)
    if report["absent"]:
        lines += ["## Absent from this run directory", ""]
        lines += [f"- {piece}" for piece in report["absent"]] + [""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# plots


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


# ---------------------------------------------------------------------------------------------
# writing


def report_destination(run_dir: Path, out: Path | None) -> Path:
    """The report folder (default RUN_DIR/report), refused when replacing it could lose data."""
    out = Path(run_dir) / "report" if out is None else Path(out)
    resolved, run = out.resolve(), Path(run_dir).resolve()
    if resolved == run or resolved in run.parents:
        raise MksgnError(
            f"--out {out} would replace the run directory {run_dir}; give a folder of its own"
        )
    if out.exists() and not out.is_dir():
        raise MksgnError(f"--out {out} is a file; give a folder for the report")
    if out.is_dir() and any(out.iterdir()) and not (out / "report.json").is_file():
        raise MksgnError(
            f"--out {out} is a non-empty folder that holds no earlier report (no report.json); "
            "the report replaces its folder, so give a new or empty one"
        )
    return out


def write_report(
    run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None
) -> Path:
    """Write report.json, report.md and the plots into `out` (default RUN_DIR/report): all of
    them appear together, or nothing changes."""
    run_dir = Path(run_dir)
    destination = report_destination(run_dir, None if out is None else Path(out))
    report, spikes = gather(run_dir)
    with atomic_directory(destination) as folder:
        folder.chmod(0o777 & ~current_umask())  # mkdtemp's 0700 would outlive the rename
        plot_training(report, folder / PLOTS["training"])
        plot_firing_rates(report, folder / PLOTS["firing_rates"])
        plot_energy(report, folder / PLOTS["energy"])
        plot_raster(report, spikes, folder / PLOTS["raster"])
        (folder / "report.md").write_text(render_markdown(report))
        with open(folder / "report.json", "w") as handle:
            json.dump(report, handle, indent=2, default=float)
            handle.write("\n")
    return destination
