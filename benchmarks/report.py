"""`mksgn report RUN_DIR`: what a demo run produced, gathered into report.json, report.md and plots.

The run directory is the layout `mksgn demo` writes. Required (an `Error:` names whichever are
missing): summary.json with the accuracy, parity and energy sections; metrics.jsonl of every
trained model the summary lists (RUN_DIR/<model>/); spikes-snntorch.npz and spikes-lava-float.npz
(the spike raster). Optional (the report says they are absent): the Lava fixed-point run
(spikes-lava-fixed.npz and the summary's fixed_point section), the per-model evaluation, the
teacher's MACs per layer and the stage timings.

This module gathers the sections and writes the report folder; report_markdown renders report.md
and report_plots draws the plots.
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
from mksgn.benchmarks.report_markdown import PLOTS, render_markdown
from mksgn.benchmarks.report_plots import (
    RASTER_BACKENDS,
    plot_energy,
    plot_firing_rates,
    plot_raster,
    plot_training,
)
from mksgn.diagnostics import silent_layer_warnings
from mksgn.errors import MksgnError
from mksgn.train.history import read_history

SUMMARY = "summary.json"
MODEL_LABELS = {"gcn": "GCN teacher", "base-sgn": "Base-SGN", "mk-sgn": "MK-SGN"}
BACKENDS = ("snntorch", "lava-float", "lava-fixed")
SUMMARY_KEYS = ("accuracy", "parity_per_layer", "parity_identical", "energy", "lava_samples")


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
