"""`mksgn report DIR` for a run made by hand: whatever sections DIR's files support.

- training curves from every `metrics.jsonl` (DIR itself or a folder inside it);
- accuracy per backend from `simulate --out` files (.npz with the run member);
- energy from `energy --out` reports (.json);
- spike parity between two backends that ran the same model on the same samples;
- Loihi 2 resources from a folder `mksgn convert` wrote.

The report says which sections it left out and why. A demo folder (summary.json) gets the
demo's fuller report (benchmarks/report.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mksgn import run_files
from mksgn.atomic import atomic_directory, current_umask
from mksgn.benchmarks.report import read_json, report_destination
from mksgn.benchmarks.report_markdown import loihi2_markdown, percent, table
from mksgn.benchmarks.report_plots import new_figure
from mksgn.errors import MksgnError
from mksgn.targets.simulate import RUN_KEY
from mksgn.train.history import read_history

TRAINING_PLOT = "training.png"
SEARCH_DEPTH = 2  # DIR, its folders and theirs


def files_in(run_dir: Path, pattern: str) -> list[Path]:
    """Files matching `pattern` in DIR and up to SEARCH_DEPTH folders below, report/ excluded."""
    found = []
    for depth in range(SEARCH_DEPTH + 1):
        found += [
            path
            for path in sorted(run_dir.glob("/".join(["*"] * depth + [pattern])))
            if path.is_file() and "report" not in path.relative_to(run_dir).parts[:-1]
        ]
    return found


def training_runs(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Run folder (relative to DIR) -> its metrics.jsonl records."""
    runs = {}
    for path in files_in(run_dir, run_files.METRICS):
        history = read_history(path)
        if history:
            runs[str(path.parent.relative_to(run_dir)) or "."] = history
    return runs


def simulations(run_dir: Path) -> dict[str, dict[str, Any]]:
    """`simulate --out` file (relative) -> backend, model, samples, accuracy and its arrays."""
    found = {}
    for path in files_in(run_dir, "*.npz"):
        try:
            with np.load(path, allow_pickle=False) as archive:
                if RUN_KEY not in archive.files:
                    continue
                arrays = {key: archive[key] for key in archive.files}
            run = json.loads(str(arrays.pop(RUN_KEY)))
        except (OSError, ValueError):
            continue
        arrays = {key: value for key, value in arrays.items() if not key.startswith("mksgn_")}
        predictions, labels = arrays["predictions"], arrays.get("labels")
        accuracy = None if labels is None else float(np.mean(predictions == labels))
        found[str(path.relative_to(run_dir))] = {
            **run,
            "samples": int(predictions.size),
            "accuracy": accuracy,
            "arrays": arrays,
        }
    return found


def energy_reports(run_dir: Path) -> dict[str, dict[str, Any]]:
    """`energy --out` report (relative path) -> the report."""
    found = {}
    for path in files_in(run_dir, "*.json"):
        try:
            report = read_json(path)
        except MksgnError:
            continue
        if isinstance(report, dict) and {"per_sample", "backend", "samples"} <= set(report):
            found[str(path.relative_to(run_dir))] = report
    return found


def parity(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per pair of runs of one model on the same samples by different backends: the fraction of
    equal entries per recorded node (spikes exactly, graded values within 1e-4 relative)."""
    from mksgn.benchmarks.demo import agreement

    pairs = []
    names = sorted(runs)
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            a, b = runs[first], runs[second]
            if (a["model"], a["samples"]) != (b["model"], b["samples"]) or (
                a["backend"] == b["backend"]
            ):
                continue
            layers = {
                node: value
                for node, value in agreement(a["arrays"], b["arrays"]).items()
                if node not in ("predictions", "labels")
            }
            pairs.append({"files": [first, second], "backends": [a["backend"], b["backend"]],
                          "per_layer": layers})  # fmt: skip
    return pairs


def converted_folders(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Folders `mksgn convert` wrote (relative) -> their Loihi 2 resource report."""
    found = {}
    for path in files_in(run_dir, run_files.MANIFEST):
        resources = read_json(path).get("loihi2")
        if isinstance(resources, dict) and "layers" in resources:
            folder = str(path.parent.relative_to(run_dir)) or "."
            found[folder] = {"folder": folder, **resources}
    return found


def gather_run(run_dir: Path) -> dict[str, Any]:
    """The report of a hand-made run folder; MksgnError when nothing in it can be reported."""
    training = training_runs(run_dir)
    runs = simulations(run_dir)
    energy = energy_reports(run_dir)
    pairs = parity(runs)
    loihi2 = converted_folders(run_dir)
    left_out = []
    if not training:
        left_out.append("training: no metrics.jsonl (written by 'mksgn train --out DIR')")
    if not runs:
        left_out.append("accuracy per backend: no 'mksgn simulate --out FILE.npz' result")
    if not energy:
        left_out.append("energy: no 'mksgn energy --out FILE.json' report")
    if not pairs:
        backends = sorted({run["backend"] for run in runs.values()})
        left_out.append(
            "spike parity: needs 'simulate --out' results of one model on the same samples from "
            f"two backends; found {', '.join(backends) or 'none'}"
        )
    if not loihi2:
        left_out.append("Loihi 2 resources: no folder written by 'mksgn convert'")
    if not (training or runs or energy or loihi2):
        raise MksgnError(
            f"{run_dir} holds nothing a report can use: metrics.jsonl of a training run, "
            "'simulate --out' .npz files, 'energy --out' .json reports or a 'convert' folder"
        )
    simulated = {
        name: {key: value for key, value in run.items() if key != "arrays"}
        for name, run in runs.items()
    }
    return {
        "run_dir": str(run_dir),
        "training": training,
        "simulations": simulated,
        "energy": energy,
        "parity": pairs,
        "loihi2": loihi2,
        "left_out": left_out,
    }


def render_run_markdown(report: dict[str, Any]) -> str:
    """report.md of a hand-made run."""
    lines = [f"# Run report: {report['run_dir']}", ""]
    if report["training"]:
        lines += ["## Training", "", f"![training curves]({TRAINING_PLOT})", ""]
        rows = []
        for run, history in report["training"].items():
            last = history[-1]
            rows.append([run, str(last.get("epoch")), percent(last.get("train_acc")),
                         percent(last.get("test_acc"))])  # fmt: skip
        lines += table(["run", "epochs", "train top-1", "test top-1"], rows)
    if report["simulations"]:
        lines += ["## Accuracy per backend", ""]
        rows = [
            [name, run["backend"], run["model"], str(run["samples"]), percent(run["accuracy"])]
            for name, run in report["simulations"].items()
        ]
        lines += table(["file", "backend", "model", "samples", "top-1"], rows)
    if report["energy"]:
        lines += ["## Energy per sample", ""]
        rows = []
        for name, energy in report["energy"].items():
            reduction = energy.get("reduction_percent")
            rows.append([name, energy["backend"], str(energy["samples"]),
                         f"{energy['per_sample']['energy_mj']:.4g}",
                         "" if reduction is None else f"{reduction:.1f} %"])  # fmt: skip
        lines += table(["file", "backend", "samples", "mJ / sample", "vs teacher"], rows)
    for pair in report["parity"]:
        lines += [f"## Spike parity: {' vs '.join(pair['backends'])}", ""]
        rows = [[node, percent(value, 3)] for node, value in pair["per_layer"].items()]
        lines += table(["node", "equal entries"], rows)
    for resources in report["loihi2"].values():
        lines += loihi2_markdown(resources)
    if report["left_out"]:
        lines += ["## Left out", ""] + [f"- {why}" for why in report["left_out"]] + [""]
    return "\n".join(lines)


def plot_runs(training: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Loss and test accuracy per epoch, one line per training run."""
    figure = new_figure(10, 4)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for index, (run, history) in enumerate(training.items()):
        epochs = [record.get("epoch") for record in history]
        loss_axes.plot(epochs, [r.get("train_loss") for r in history], color=f"C{index}", label=run)
        accuracy_axes.plot(
            epochs, [r.get("test_acc") for r in history], color=f"C{index}", label=f"{run} test"
        )
    loss_axes.set(xlabel="epoch", ylabel="training loss")
    accuracy_axes.set(xlabel="epoch", ylabel="top-1", ylim=(0, 1))
    loss_axes.legend(fontsize="small")
    accuracy_axes.legend(fontsize="small")
    figure.savefig(path, format="png")


def write_run_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write report.md, report.json (and the training plot) of a hand-made run, all at once."""
    destination = report_destination(run_dir, out)
    report = gather_run(run_dir)
    with atomic_directory(destination) as folder:
        folder.chmod(0o777 & ~current_umask())
        if report["training"]:
            plot_runs(report["training"], folder / TRAINING_PLOT)
        (folder / "report.md").write_text(render_run_markdown(report))
        with open(folder / "report.json", "w") as handle:
            json.dump(report, handle, indent=2, default=float)
            handle.write("\n")
    return destination
