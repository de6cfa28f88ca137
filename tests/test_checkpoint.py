"""Checkpoints: round trip, weights-only loading, refusal of pickled code and malformed files."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
from cli_runner import run

from mksgn.errors import MksgnError
from mksgn.train.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from mksgn.train.models import build_model, preset_config
from mksgn.train.models.config import LayerSpec


def small_config(model: str = "mk-sgn"):
    """A few-channel model so building and running it takes milliseconds."""
    config = preset_config(model, "tiny", num_classes=3, time_steps=2, frames=8)
    return dataclasses.replace(
        config,
        layers=(LayerSpec("sgc", 4), LayerSpec("stc", 4), LayerSpec("sgc", 6)),
        temporal_kernel=3,
    )


class WritesAFile:
    """Unpickling this would create `target`: the payload a malicious checkpoint carries."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def saved_model(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    """A checkpoint of a freshly initialised MK-SGN with optimiser state and a moved buffer."""
    torch.manual_seed(0)
    config = small_config()
    model = build_model(config)
    model.fusion.mi_weight.copy_(torch.tensor([0.5, 1.0, 1.5, 1.0]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    out = model(torch.randn(2, 3, 8, 25, 2))
    out.logits.sum().backward()
    optimizer.step()
    path = tmp_path / "run" / "checkpoint.pt"
    save_checkpoint(
        path,
        config=config,
        model_state=model.state_dict(),
        optimizer_state=optimizer.state_dict(),
        scheduler_state={"last_epoch": 3},
        epoch=3,
        metrics={"test_acc": 0.5},
        rng_state={"torch": torch.get_rng_state()},
        extra={"note": "hello"},
    )
    return path, model


def test_round_trip(tmp_path: Path) -> None:
    path, model = saved_model(tmp_path)
    checkpoint = load_checkpoint(path)
    assert checkpoint.config == small_config()
    assert checkpoint.epoch == 3
    assert checkpoint.metrics == {"test_acc": 0.5}
    assert checkpoint.extra == {"note": "hello"}
    assert checkpoint.scheduler_state == {"last_epoch": 3}
    assert checkpoint.rng_state["torch"].dtype == torch.uint8
    assert set(checkpoint.model_state) == set(model.state_dict())
    for name, value in model.state_dict().items():
        assert torch.equal(checkpoint.model_state[name], value), name
    assert checkpoint.optimizer_state["state"]  # AdamW moments survive
    assert list(tmp_path.joinpath("run").iterdir()) == [path]  # no temporary left behind


def test_load_model_rebuilds_the_same_function(tmp_path: Path) -> None:
    path, model = saved_model(tmp_path)
    rebuilt, config, checkpoint = load_model(path)
    assert not rebuilt.training
    assert config == checkpoint.config
    assert torch.equal(rebuilt.fusion.mi_weight, torch.tensor([0.5, 1.0, 1.5, 1.0]))
    model.eval()
    x = torch.randn(2, 3, 8, 25, 2)
    with torch.no_grad():
        assert torch.equal(rebuilt(x).logits, model(x).logits)


def test_pickled_code_is_refused_and_never_runs(tmp_path: Path, capsys) -> None:
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": small_config().to_dict(),
            "model_state": {},
            "epoch": 0,
            "payload": WritesAFile(target),
        },
        path,
    )
    with pytest.raises(MksgnError, match="refused: it contains Python objects other than tensors"):
        load_checkpoint(path)
    assert not target.exists()
    data = tmp_path / "unused.npz"
    data.write_bytes(b"")
    assert run(["evaluate", str(path), "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: checkpoint ") and str(path) in err
    assert not target.exists()


def test_a_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.pt"
    garbage.write_text("just text\n")
    with pytest.raises(MksgnError, match=r"notes\.pt is not a readable PyTorch checkpoint"):
        load_checkpoint(garbage)


def test_a_plain_state_dict_is_not_an_mksgn_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(build_model(small_config()).state_dict(), path)
    with pytest.raises(
        MksgnError, match=r"weights\.pt is a PyTorch file but not an mksgn checkpoint"
    ):
        load_checkpoint(path)


def test_missing_keys_are_named(tmp_path: Path) -> None:
    path = tmp_path / "partial.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "epoch": 1}, path)
    with pytest.raises(MksgnError, match=r"partial\.pt lacks the keys \['config', 'model_state'\]"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_the_config(tmp_path: Path) -> None:
    path = tmp_path / "mismatch.pt"
    state = build_model(small_config("base-sgn")).state_dict()
    save_checkpoint(
        path,
        config=small_config("mk-sgn"),
        model_state=state,
        optimizer_state=None,
        scheduler_state=None,
        epoch=0,
        metrics={},
        rng_state={},
    )
    with pytest.raises(MksgnError, match=r"mismatch\.pt: its weights do not fit a mk-sgn model"):
        load_model(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MksgnError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.pt")


def rewrite_archive(path: Path, change) -> None:
    """Rewrite the checkpoint's zip archive with `change(records)` applied to name -> bytes."""
    with zipfile.ZipFile(path) as archive:
        records = {name: archive.read(name) for name in archive.namelist()}
    change(records)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in records.items():
            archive.writestr(name, data)


def test_a_storage_larger_than_its_record_is_an_error(tmp_path: Path) -> None:
    """The pickle declares how many elements a storage has; its data record held 16 bytes. torch
    loaded it as a 4 MiB storage over a 16-byte buffer and the first read crashed (SIGSEGV)."""
    path = tmp_path / "forged.pt"
    save_checkpoint(path, config=small_config(), model_state={"w": torch.ones(2**20)},
                    optimizer_state=None, scheduler_state=None, epoch=1, metrics={},
                    rng_state={})  # fmt: skip

    def shrink_the_largest_record(records: dict[str, bytes]) -> None:
        largest = max(records, key=lambda name: len(records[name]))
        records[largest] = records[largest][:16]

    rewrite_archive(path, shrink_the_largest_record)
    # In a child: a regression would take the interpreter down, not fail an assertion.
    code = textwrap.dedent(
        f"""
        from mksgn.errors import MksgnError
        from mksgn.train.checkpoint import load_checkpoint
        try:
            print(float(load_checkpoint({str(path)!r}).model_state["w"].sum()))
        except MksgnError as error:
            print(error)
        """
    )
    ended = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert ended.returncode == 0, ended.stderr[-2000:]
    assert "is not a readable PyTorch checkpoint" in ended.stdout, ended.stdout


def test_a_tensor_expanded_over_its_storage_is_an_error(tmp_path: Path) -> None:
    """Stride 0 lets 4 bytes of data stand for 2**20 elements; a copy would allocate them all."""
    path = tmp_path / "expanded.pt"
    save_checkpoint(path, config=small_config(),
                    model_state={"w": torch.zeros(1).expand(2**20)},
                    optimizer_state=None, scheduler_state=None, epoch=1, metrics={},
                    rng_state={})  # fmt: skip
    with pytest.raises(MksgnError, match=r"tensor model_state/w shaped \(1048576,\) needs 4194304"):
        load_checkpoint(path)


def test_damage_is_not_called_code(tmp_path: Path) -> None:
    """A missing data record is a damaged file, not a refused payload."""
    path, _ = saved_model(tmp_path)
    rewrite_archive(path, lambda records: records.pop(next(n for n in records if "/data/" in n)))
    with pytest.raises(MksgnError, match=r"is not a readable PyTorch checkpoint.*file not found"):
        load_checkpoint(path)
