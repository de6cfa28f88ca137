"""Names of the files in mksgn's run and artifact folders: one spelling for every module that
writes or reads them (train run folders, `convert` artifacts, the demo's folder)."""

from __future__ import annotations

CHECKPOINT = "checkpoint.pt"  # train: model, optimiser and plan state
METRICS = "metrics.jsonl"  # train: one JSON object per epoch
CONFIG = "config.json"  # train: the model config and training plan
GRAPH = "model.nir"  # convert: the NIR graph the artifact runs
MANIFEST = "manifest.json"  # convert: what the artifact holds and how it was lowered
