"""report.md of `mksgn report`: the Markdown tables rendered from the report.json object, one
function per section, and the file names of the plots it links (PLOTS)."""

from __future__ import annotations

from typing import Any

# The plots report.md links, by the file each is saved to in the report folder.
PLOTS = {
    "training": "training-curves.png",
    "firing_rates": "firing-rates.png",
    "energy": "energy-per-layer.png",
    "raster": "spike-raster.png",
}


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


def heading_markdown(report: dict[str, Any]) -> list[str]:
    """The title and run directory, and the run's warnings."""
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
    return lines


def accuracy_markdown(models: dict[str, Any]) -> list[str]:
    """Accuracy, size and training time per model, with the training curves."""
    lines = [
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
            for m in models.values()
        ],
    )
    lines += [f"![training curves]({PLOTS['training']})", ""]
    return lines


def backends_markdown(sim: dict[str, Any]) -> list[str]:
    """The simulated MK-SGN's accuracy and speed per backend."""
    lines = [f"## MK-SGN on {sim['samples']} test samples, per backend", ""]
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
    return lines


def parity_markdown(report: dict[str, Any]) -> list[str]:
    """Spike parity per layer: Lava float against snnTorch, Lava fixed point against Lava float."""
    sim, fixed = report["simulation"], report["fixed_point"]
    parity = report["parity"]
    lines = [
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
    return lines


def fixed_point_markdown(fixed: dict[str, Any] | None) -> list[str]:
    """How much of Lava float the fixed-point run reproduces, with the firing-rate plot."""
    lines = ["## Fixed-point agreement", ""]
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
    return lines


def energy_markdown(energy: dict[str, Any]) -> list[str]:
    """Energy per layer, MK-SGN per backend and the GCN teacher, with the energy plot."""
    backends = list(energy["backends"])
    lines = [
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
    lines += [f"![energy per layer]({PLOTS['energy']})", ""]
    return lines


def totals_markdown(energy: dict[str, Any]) -> list[str]:
    """Operations and energy per sample per backend, against the teacher."""
    teacher = energy["teacher"]
    lines = ["## Per-sample totals", ""]
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
    return lines


def paper_style_markdown(energy: dict[str, Any]) -> list[str]:
    """Energy as the MK-SGN paper counts it, beside published figures (no section when no
    backend has paper-style counts)."""
    lines: list[str] = []
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
    return lines


def raster_markdown() -> list[str]:
    """The spike raster plot's section."""
    return [
        "## Spike raster (sample 0, snnTorch vs Lava float)",
        "",
        f"![spike raster]({PLOTS['raster']})",
        "",
    ]


def timings_markdown(timings: dict[str, Any]) -> list[str]:
    """Seconds per stage and for the whole run."""
    lines = ["## Timings", ""]
    stage_rows = [[name, f"{seconds:.1f}"] for name, seconds in (timings["stages_s"] or {}).items()]
    stage_rows.append(["whole run", number(timings["total_s"], ".1f")])
    lines += table(["stage", "seconds"], stage_rows)
    return lines


def absent_markdown(absent: list[str]) -> list[str]:
    """What the run directory lacks (no section when nothing does)."""
    lines: list[str] = []
    if absent:
        lines += ["## Absent from this run directory", ""]
        lines += [f"- {piece}" for piece in absent] + [""]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """report.md: the tables, with the plots linked."""
    energy = report["energy"]
    lines = heading_markdown(report)
    lines += accuracy_markdown(report["models"])
    lines += backends_markdown(report["simulation"])
    lines += parity_markdown(report)
    lines += fixed_point_markdown(report["fixed_point"])
    lines += energy_markdown(energy)
    lines += totals_markdown(energy)
    lines += paper_style_markdown(energy)
    if report.get("loihi2"):
        lines += loihi2_markdown(report["loihi2"])
    lines += raster_markdown()
    lines += timings_markdown(report["timings"])
    lines += absent_markdown(report["absent"])
    return "\n".join(lines)
