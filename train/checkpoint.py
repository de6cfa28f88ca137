"""Training checkpoints: plain tensors and JSON-able data only, so they load with
`torch.load(weights_only=True)` and a checkpoint from a stranger cannot run code."""

from __future__ import annotations

import io
import pickle
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mksgn.atomic import atomic_path
from mksgn.errors import MksgnError
from mksgn.train.models import build_model
from mksgn.train.models.config import ModelConfig

CHECKPOINT_FORMAT = "mksgn-checkpoint"
CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ("format", "version", "config", "model_state", "epoch")


@dataclass
class Checkpoint:
    """What a checkpoint file holds, with the model config rebuilt."""

    path: Path
    config: ModelConfig
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None
    scheduler_state: dict[str, Any] | None
    epoch: int
    metrics: dict[str, Any] = field(default_factory=dict)
    rng_state: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: str | Path,
    *,
    config: ModelConfig,
    model_state: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any] | None,
    scheduler_state: dict[str, Any] | None,
    epoch: int,
    metrics: dict[str, Any],
    rng_state: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint atomically: an interrupted save leaves the previous file intact."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": config.to_dict(),
        # Tensors are moved to the CPU so a GPU-trained checkpoint loads anywhere.
        "model_state": {name: value.detach().cpu() for name, value in model_state.items()},
        "optimizer_state": optimizer_state,
        "scheduler_state": scheduler_state,
        "epoch": int(epoch),
        "metrics": metrics,
        "rng_state": rng_state,
        "extra": extra or {},
    }
    with atomic_path(path, suffix=".pt") as tmp:
        # Serialised in memory, then written by Python: torch.save to a full disk raises an
        # opaque RuntimeError ("unexpected pos"), a plain write an OSError that names the file.
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        tmp.write_bytes(buffer.getbuffer())


# What torch's weights-only unpickler says when a pickle asks for code (a class, a function, an
# opcode it does not run), as opposed to a damaged file (a missing record, a storage too small).
CODE_REFUSALS = (
    "Unsupported class",
    "unsupported class",
    "unrecognized function",
    "Can only build",
    "Only persistent_load of storage",
    "Unsupported operand",
)


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # how every HDF5 file (so every NIR file) begins


def read_payload(path: Path) -> dict[str, Any]:
    """torch.load with weights_only=True, turning every failure into an MksgnError naming the file."""
    if not path.is_file():
        raise MksgnError(f"checkpoint {path} does not exist (train one with 'mksgn train')")
    with open(path, "rb") as handle:
        if handle.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
            raise MksgnError(
                f"{path} is a NIR graph (HDF5), not a training checkpoint: this command takes "
                f"the checkpoint.pt that 'mksgn train' writes; run the graph with 'mksgn simulate "
                f"{path}' or count it with 'mksgn energy {path}'"
            )
    try:
        # mmap: every storage is then a slice of the mapped file. Without it, a storage that
        # declares more elements than its record holds pointed past a 16-byte buffer, and the
        # first read of its tensor crashed the interpreter (SIGSEGV).
        with warnings.catch_warnings():
            # A damaged pickle can lead torch through deprecated internals ("TypedStorage is
            # deprecated", seen by fuzzing) ahead of the error or payload reported here.
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:
        # torch prefixes its unpickler's own message with a paragraph of advice.
        reason = str(error).partition("WeightsUnpickler error: ")[2].strip()
        reason = reason.splitlines()[0] if reason else first_line(error)
        if not any(marker in reason for marker in CODE_REFUSALS):
            raise MksgnError(
                f"{path} is not a readable PyTorch checkpoint ({reason}); "
                "is it truncated or damaged?"
            ) from None
        raise MksgnError(
            f"checkpoint {path} refused: it contains Python objects other than tensors and plain "
            f"data, and loading it could run code ({reason}); only load checkpoints written by "
            "'mksgn train'"
        ) from None
    except Exception as error:  # torch raises many kinds (KeyError, EOFError, RuntimeError, ...)
        raise MksgnError(
            f"{path} is not a readable PyTorch checkpoint ({first_line(error)}); "
            "is it truncated or another kind of file?"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise MksgnError(
            f"{path} is a PyTorch file but not an mksgn checkpoint "
            f"(no 'format': {CHECKPOINT_FORMAT!r} entry); train one with 'mksgn train'"
        )
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise MksgnError(f"checkpoint {path} lacks the keys {missing}; the file is incomplete")
    if payload["version"] != CHECKPOINT_VERSION:
        raise MksgnError(
            f"checkpoint {path} has format version {payload['version']!r}; this mksgn reads "
            f"version {CHECKPOINT_VERSION}"
        )
    check_tensors(payload, path)
    return payload


def check_tensors(payload: object, path: Path) -> None:
    """Every tensor in the payload is dense and its elements fit in the bytes its storage holds,
    so copying one costs no more memory than the file supplied (a stride of 0 could otherwise
    expand 16 bytes into 2**31 elements)."""
    for where, tensor in tensors_in(payload):
        if problem := tensor_problem(tensor):
            raise MksgnError(
                f"checkpoint {path}: tensor {where} {problem}; the file is damaged or was altered"
            )


def tensors_in(payload: object) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor in nested dicts, lists and tuples, with its path ("model_state/fc.weight")."""
    pending: list[tuple[str, object]] = [("", payload)]
    while pending:  # a loop, not recursion: the nesting depth comes from the file
        where, value = pending.pop()
        if isinstance(value, torch.Tensor):
            yield where.lstrip("/"), value
            continue
        if isinstance(value, dict):
            items = value.items()
        elif isinstance(value, (list, tuple)):
            items = enumerate(value)
        else:
            continue
        pending.extend(
            (f"{where}/{key}", item)
            for key, item in items
            if isinstance(item, (dict, list, tuple, torch.Tensor))
        )


def tensor_problem(tensor: torch.Tensor) -> str | None:
    """Why a loaded tensor is not one mksgn writes, or None."""
    if tensor.layout is not torch.strided or tensor.is_quantized:
        return f"is a {tensor.layout} {'quantized ' if tensor.is_quantized else ''}tensor"
    needed = tensor.numel() * tensor.element_size()
    held = tensor.untyped_storage().nbytes()
    if needed > held:
        return f"shaped {tuple(tensor.shape)} needs {needed} bytes but its storage holds {held}"
    return None


def first_line(error: BaseException) -> str:
    """The first line of an exception message (torch's are paragraphs)."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint without executing anything from it."""
    path = Path(path)
    payload = read_payload(path)
    try:
        config = ModelConfig.from_dict(dict(payload["config"]))
    except (MksgnError, TypeError, ValueError) as error:
        raise MksgnError(f"checkpoint {path} has an invalid model config: {error}") from None
    if not isinstance(payload["model_state"], dict):
        raise MksgnError(f"checkpoint {path}: 'model_state' is not a dict of tensors")
    return Checkpoint(
        path=path,
        config=config,
        model_state=payload["model_state"],
        optimizer_state=payload.get("optimizer_state"),
        scheduler_state=payload.get("scheduler_state"),
        epoch=int(payload["epoch"]),
        metrics=dict(payload.get("metrics") or {}),
        rng_state=dict(payload.get("rng_state") or {}),
        extra=dict(payload.get("extra") or {}),
    )


def load_model(path: str | Path) -> tuple[nn.Module, ModelConfig, Checkpoint]:
    """Rebuild a checkpoint's model with its weights, in eval mode, on the CPU."""
    checkpoint = load_checkpoint(path)
    model = build_model(checkpoint.config)
    try:
        model.load_state_dict(checkpoint.model_state)
    except RuntimeError as error:
        raise MksgnError(
            f"checkpoint {checkpoint.path}: its weights do not fit a {checkpoint.config.model} model "
            f"built from its own config ({first_line(error)})"
        ) from None
    model.eval()
    return model, checkpoint.config, checkpoint
