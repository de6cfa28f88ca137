"""What `mksgn train` trains with: the data, model, teacher, model config and settings of a run,
from the command line for a new run, and for `--resume` from the run's own config.json, changed
only by the options given again (and refused later where they contradict its checkpoint).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mksgn import run_files
from mksgn.errors import MksgnError
from mksgn.train.data.layout import load_layout
from mksgn.train.models.config import ModelConfig
from mksgn.train.settings import TrainSettings, config_for_data

# A `mksgn train` option named like a TrainSettings field sets that field, so a new setting needs
# only its field and its click option. --benchmark is the one exception: every command stores it
# as `data_benchmark`.
RENAMED_OPTIONS = {"data_benchmark": "benchmark"}
SETTING_FIELDS = frozenset(field.name for field in dataclasses.fields(TrainSettings))
# Options that shape the model (its config).
MODEL_OPTIONS = (
    "preset",
    "time_steps",
    "frames",
    "attention_hops",
    "dense_attention",
    "layout_name",
)


@dataclass
class TrainPlan:
    """Everything `train()` needs besides the output folder."""

    data_path: Path
    model_name: str
    teacher: Path | None
    config: ModelConfig
    settings: TrainSettings


def model_config(data_path: Path, model_name: str, options: dict[str, Any]) -> ModelConfig:
    """The preset config for the dataset, with the model-shaping options applied."""
    if options["dense_attention"] and options["attention_hops"] is not None:
        raise MksgnError("--attention-hops and --dense-attention exclude each other")
    layout = None if options["layout_name"] is None else load_layout(options["layout_name"])
    config = config_for_data(
        data_path,
        model_name,
        options["preset"],
        options["time_steps"],
        options["frames"],
        layout,
        options["data_benchmark"],
    )
    if options["dense_attention"] or options["attention_hops"] is not None:
        config = dataclasses.replace(config, attention_hops=options["attention_hops"])
    return config


def setting_values(options: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The TrainSettings fields that the options in `names` set, with their values."""
    values = {}
    for name in names:
        field = RENAMED_OPTIONS.get(name, name)
        if field in SETTING_FIELDS:
            values[field] = options[name]
    return values


def new_plan(options: dict[str, Any]) -> TrainPlan:
    """A new run: every option as given (or its default)."""
    settings = TrainSettings(**setting_values(options, options))
    config = model_config(options["data_path"], options["model_name"], options)
    return TrainPlan(
        options["data_path"], options["model_name"], options["teacher"], config, settings
    )


def read_run_config(out_dir: Path) -> dict[str, Any]:
    """The config.json a run folder holds."""
    path = out_dir / run_files.CONFIG
    try:
        recorded = json.loads(path.read_text())
        if not isinstance(recorded, dict) or not {"data", "model", "settings"} <= set(recorded):
            raise ValueError("it lacks 'data', 'model' or 'settings'")
    except FileNotFoundError:
        if not (out_dir / run_files.CHECKPOINT).exists():
            raise MksgnError(
                f"--resume: {out_dir / run_files.CHECKPOINT} does not exist; start a run without "
                "--resume"
            ) from None
        raise MksgnError(
            f"--resume: {path} is missing, so the run's data, model and settings are unknown"
        ) from None
    except (ValueError, UnicodeDecodeError) as error:
        raise MksgnError(f"--resume: {path} is not a run's config.json ({error})") from None
    return recorded


def resumed_plan(out_dir: Path, options: dict[str, Any], given: set[str]) -> TrainPlan:
    """The plan recorded in `out_dir`, changed only by the options in `given`."""
    recorded = read_run_config(out_dir)
    data_path = options["data_path"] or Path(recorded["data"])
    if not data_path.exists():
        raise MksgnError(
            f"--resume: the run's data {data_path} (from {out_dir / run_files.CONFIG}) does not "
            "exist here; pass --data"
        )
    model_name = options["model_name"] or recorded["model"]["model"]
    teacher = options["teacher"]
    if teacher is None and recorded.get("teacher"):
        teacher = Path(recorded["teacher"])
    if given & set(MODEL_OPTIONS) or model_name != recorded["model"]["model"]:
        config = model_config(data_path, model_name, options)  # the checkpoint judges it
    else:
        config = ModelConfig.from_dict(recorded["model"])
    values = {key: value for key, value in recorded["settings"].items() if key in SETTING_FIELDS}
    values.update(setting_values(options, given))
    return TrainPlan(data_path, model_name, teacher, config, TrainSettings(**values))
