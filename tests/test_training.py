"""`mksgn train`: every model from the command line, output files, determinism, exact resume,
Ctrl-C safety, knowledge distillation and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import run

from mksgn.train.checkpoint import load_checkpoint
from mksgn.train.data import synthetic
from mksgn.train.data.formats import SkeletonArrays, write_ctrgcn_npz
from mksgn.train.epoch import TrainingObjective
from mksgn.train.models import build_model
from mksgn.train.models.cost import dense_macs_per_sample, parameter_count
from mksgn.train.settings import TrainSettings, config_for_data, learning_rate_factor
from mksgn.train.training import train

CLASSES, FRAMES = 4, 16
SPIKING_LAYERS = [f"layer{i}" for i in range(1, 7)]


def train_args(data: Path, model: str, out: Path, *extra: str) -> list[str]:
    """A tiny, fast `mksgn train` command line."""
    return [
        "train",
        "--data",
        str(data),
        "--model",
        model,
        "--frames",
        str(FRAMES),
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--out",
        str(out),
        *extra,
    ]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 4-class synthetic set (16 train / 16 test) and a GCN teacher trained on it for 1 epoch."""
    root = tmp_path_factory.mktemp("training")
    data = root / "synth.npz"
    synthetic.write_npz(
        synthetic.generate(classes=CLASSES, samples_per_class=8, frames=FRAMES, seed=0), data
    )
    teacher_dir = root / "teacher"
    train(
        data,
        config_for_data(data, "gcn", "tiny", frames=FRAMES),
        TrainSettings(epochs=1, batch_size=8),
        teacher_dir,
        progress=False,
    )
    return {"root": root, "data": data, "teacher": teacher_dir / "checkpoint.pt"}


def fast_train(workspace: dict[str, Path], model: str, out: Path, **settings) -> dict:
    """Train through the Python API (no CLI parsing) with small batches."""
    config = config_for_data(workspace["data"], model, "tiny", time_steps=2, frames=FRAMES)
    options = {"epochs": 1, "batch_size": 8, **settings}
    teacher = options.pop("teacher", None)
    resume = options.pop("resume", False)
    return train(
        workspace["data"],
        config,
        TrainSettings(**options),
        out,
        teacher_checkpoint=teacher,
        resume=resume,
        progress=False,
    )


def assert_same_state(first: dict, second: dict) -> None:
    """Bit-for-bit equal state dicts."""
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


@pytest.mark.parametrize("model", ["gcn", "base-sgn", "mk-sgn"])
def test_each_model_trains_from_the_command_line(
    workspace: dict[str, Path], model: str, capsys: pytest.CaptureFixture
) -> None:
    out = workspace["root"] / f"cli-{model}"
    assert run([*train_args(workspace["data"], model, out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt",
        "config.json",
        "metrics.jsonl",
    ]
    lines = out.joinpath("metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record == summary
    assert record["epoch"] == 1
    assert {"train_loss", "train_acc", "test_acc", "lr", "seconds", "firing_rates"} <= set(record)
    assert 0.0 <= record["test_acc"] <= 1.0 and record["train_loss"] > 0
    config = json.loads(out.joinpath("config.json").read_text())
    assert config["model"]["model"] == model and config["model"]["frames"] == FRAMES
    assert config["model"]["num_classes"] == CLASSES
    assert config["settings"]["batch_size"] == 8
    checkpoint = load_checkpoint(out / "checkpoint.pt")
    rebuilt = build_model(checkpoint.config)
    assert config["parameters"] == parameter_count(rebuilt) > 0
    assert config["dense_macs_per_sample"] == dense_macs_per_sample(rebuilt, checkpoint.config)
    assert checkpoint.epoch == 1 and checkpoint.config.model == model
    if model == "gcn":
        assert record["firing_rates"] == {}
        return
    assert list(record["firing_rates"]) == SPIKING_LAYERS
    assert all(0.0 < rate < 1.0 for rate in record["firing_rates"].values())
    if model == "mk-sgn":
        weights = record["mi_weights"]
        assert len(weights) == 4 and np.mean(weights) == pytest.approx(1.0)
        stored = checkpoint.model_state["hidden.0.synapse.mi_weight"]
        assert torch.allclose(stored, torch.tensor(weights, dtype=stored.dtype))


def test_same_seed_same_result_other_seed_other_result(workspace: dict[str, Path]) -> None:
    root = workspace["root"]
    first = fast_train(workspace, "base-sgn", root / "seed-a", seed=3)
    second = fast_train(workspace, "base-sgn", root / "seed-b", seed=3)
    fast_train(workspace, "base-sgn", root / "seed-c", seed=4)
    drop_time = lambda m: {k: v for k, v in m.items() if k != "seconds"}  # noqa: E731
    assert drop_time(first) == drop_time(second)
    state_a = load_checkpoint(root / "seed-a" / "checkpoint.pt").model_state
    state_b = load_checkpoint(root / "seed-b" / "checkpoint.pt").model_state
    state_c = load_checkpoint(root / "seed-c" / "checkpoint.pt").model_state
    assert_same_state(state_a, state_b)
    assert not torch.equal(state_a["readout.weight"], state_c["readout.weight"])


def test_resume_continues_exactly_with_distillation(workspace: dict[str, Path]) -> None:
    root = workspace["root"]
    teacher = workspace["teacher"]
    straight = root / "straight"
    fast_train(workspace, "mk-sgn", straight, epochs=2, teacher=teacher)
    split = root / "split"
    fast_train(workspace, "mk-sgn", split, epochs=1, teacher=teacher)
    # As if the log's write after the checkpoint had failed (disk full): the resumed run takes
    # the missing line from the checkpoint.
    split.joinpath("metrics.jsonl").write_text("")
    fast_train(workspace, "mk-sgn", split, epochs=2, teacher=teacher, resume=True)
    whole = load_checkpoint(straight / "checkpoint.pt")
    resumed = load_checkpoint(split / "checkpoint.pt")
    assert resumed.epoch == whole.epoch == 2
    assert_same_state(whole.model_state, resumed.model_state)
    assert_same_state(whole.extra["translation_state"], resumed.extra["translation_state"])
    assert whole.optimizer_state["state"].keys() == resumed.optimizer_state["state"].keys()
    for key, moments in whole.optimizer_state["state"].items():
        for name, value in moments.items():
            assert torch.equal(value, resumed.optimizer_state["state"][key][name]), (key, name)
    straight_lines = straight.joinpath("metrics.jsonl").read_text().splitlines()
    split_lines = split.joinpath("metrics.jsonl").read_text().splitlines()
    assert len(split_lines) == 2
    for a, b in zip(straight_lines, split_lines, strict=True):
        a, b = json.loads(a), json.loads(b)
        a.pop("seconds"), b.pop("seconds")
        assert a == b


def test_ctrl_c_leaves_the_last_complete_checkpoint(
    workspace: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    out = workspace["root"] / "interrupted"
    original_forward = TrainingObjective.forward
    calls = {"n": 0}

    def forward_then_interrupt(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # 2 batches per epoch: Ctrl-C in the middle of epoch 2
            raise KeyboardInterrupt
        return original_forward(self, *args, **kwargs)

    monkeypatch.setattr(TrainingObjective, "forward", forward_then_interrupt)
    args = train_args(workspace["data"], "base-sgn", out)
    args[args.index("--epochs") + 1] = "3"
    assert run(args) == 130
    err = capsys.readouterr().err.splitlines()[-1]  # after the progress bars
    assert err.startswith("Error: interrupted; no output was left half-written")
    assert f"epoch 1 of 3 is saved in {out / 'checkpoint.pt'}" in err
    assert f"continue with: mksgn train --resume --out {out}" in err
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt",
        "config.json",
        "metrics.jsonl",
    ]
    assert load_checkpoint(out / "checkpoint.pt").epoch == 1
    assert len(out.joinpath("metrics.jsonl").read_text().splitlines()) == 1
    monkeypatch.undo()
    recorded_plan = out.joinpath("config.json").read_text()
    # The command the message gives, nothing else: data, model and plan come from the run.
    assert run(["train", "--resume", "--out", str(out)]) == 0
    assert load_checkpoint(out / "checkpoint.pt").epoch == 3
    assert len(out.joinpath("metrics.jsonl").read_text().splitlines()) == 3
    assert out.joinpath("config.json").read_text() == recorded_plan
    straight = workspace["root"] / "uninterrupted"
    assert run([*args[: args.index("--out") + 1], str(straight)]) == 0
    resumed, expected = (load_checkpoint(d / "checkpoint.pt").model_state for d in (out, straight))
    assert all(torch.equal(resumed[name], expected[name]) for name in expected)


def test_extending_a_finished_run_keeps_learning_and_shortening_is_refused(
    workspace: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    out = workspace["root"] / "extended"
    assert run(train_args(workspace["data"], "base-sgn", out)) == 0  # 1 epoch
    assert run(["train", "--resume", "--out", str(out)]) == 0  # its plan is done: nothing to do
    assert len(out.joinpath("metrics.jsonl").read_text().splitlines()) == 1
    assert run(["train", "--resume", "--out", str(out), "--epochs", "3"]) == 0
    history = [json.loads(line) for line in out.joinpath("metrics.jsonl").open()]
    assert [record["epoch"] for record in history] == [1, 2, 3]
    assert history[1]["lr"] > 0  # the 1-epoch cosine plan ended at rate 0
    assert json.loads(out.joinpath("config.json").read_text())["settings"]["epochs"] == 3
    capsys.readouterr()
    assert run(["train", "--resume", "--out", str(out), "--epochs", "2"]) == 1
    assert "has already trained 3 epochs; --epochs 2 would shorten the run" in (
        capsys.readouterr().err
    )


def test_interrupted_checkpoint_write_keeps_the_previous_file(
    workspace: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = workspace["root"] / "interrupted-save"
    real_write = Path.write_bytes
    saves = {"n": 0}

    def write_half_then_interrupt(self: Path, data) -> int:
        if self.suffix == ".pt":
            saves["n"] += 1
            if saves["n"] == 2:  # the second epoch's checkpoint, half written
                real_write(self, bytes(data)[: len(data) // 2])
                raise KeyboardInterrupt
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        fast_train(workspace, "base-sgn", out, epochs=2)
    assert load_checkpoint(out / "checkpoint.pt").epoch == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt",
        "config.json",
        "metrics.jsonl",
    ]


def test_distillation_from_the_command_line(
    workspace: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    out = workspace["root"] / "kd"
    args = train_args(workspace["data"], "mk-sgn", out, "--teacher", str(workspace["teacher"]))
    assert run([*args, "--kd-weight", "0.5", "--feature-weight", "2", "--json"]) == 0
    config = json.loads(out.joinpath("config.json").read_text())
    # Student layer4 runs at half the frames after its first stride, like the teacher's block3-4.
    assert config["distillation_layers"] == {"student": "layer4", "teacher": "block4"}
    assert config["settings"]["kd_weight"] == 0.5 and config["settings"]["feature_weight"] == 2.0
    assert config["teacher"] == str(workspace["teacher"])
    checkpoint = load_checkpoint(out / "checkpoint.pt")
    translation = checkpoint.extra["translation_state"]
    assert translation["project.weight"].shape == (32, 32, 1, 1)  # tiny: 32 student -> 32 teacher
    # The teacher is frozen: its checkpoint is untouched and the student checkpoint has no teacher.
    assert not any(name.startswith("teacher") for name in checkpoint.model_state)


def write_bad_shape(path: Path) -> None:
    """A CTR-GCN npz whose rows hold 2 bodies × 20 joints × xyz instead of 2 × 25 × 3."""
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.normal(size=(4, 16, 120)).astype(np.float32),
        y_train=np.eye(2, dtype=np.float32)[[0, 1, 0, 1]],
        x_test=rng.normal(size=(2, 16, 120)).astype(np.float32),
        y_test=np.eye(2, dtype=np.float32)[[0, 1]],
    )


def three_class_data(path: Path) -> None:
    """A valid dataset with 3 classes (the teacher knows 4)."""
    rng = np.random.default_rng(0)
    part = SkeletonArrays(
        data=rng.normal(size=(6, 3, FRAMES, 25, 2)).astype(np.float32),
        labels=np.array([0, 1, 2, 0, 1, 2]),
        names=None,
    )
    write_ctrgcn_npz(path, part, part, num_classes=3)


def test_errors(workspace: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    root, data, teacher = workspace["root"], workspace["data"], workspace["teacher"]

    assert run(train_args(data, "resnet", root / "e0")) == 2
    assert "Invalid value for '--model'" in capsys.readouterr().err

    bad = root / "bad-shape.npz"
    write_bad_shape(bad)
    assert run(train_args(bad, "base-sgn", root / "e1")) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and str(bad) in err and err.count("\n") == 1

    other = root / "three-classes.npz"
    three_class_data(other)
    assert run(train_args(other, "mk-sgn", root / "e2", "--teacher", str(teacher))) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Error: teacher checkpoint {teacher}") and "4 classes" in err

    student = root / "cli-base-sgn" / "checkpoint.pt"
    if not student.exists():
        fast_train(workspace, "base-sgn", student.parent)
    assert run(train_args(data, "mk-sgn", root / "e3", "--teacher", str(student))) == 1
    err = capsys.readouterr().err
    assert f"teacher checkpoint {student} holds a 'base-sgn' model" in err

    assert run(train_args(data, "gcn", root / "e4", "--teacher", str(teacher))) == 1
    assert "--model gcn takes no teacher" in capsys.readouterr().err

    existing = teacher.parent
    assert run(train_args(data, "gcn", existing)) == 1
    assert "already holds a training run" in capsys.readouterr().err

    assert run([*train_args(data, "gcn", root / "fresh"), "--resume"]) == 1
    assert "does not exist; start a run without --resume" in capsys.readouterr().err

    assert run([*train_args(data, "gcn", existing, "--lr", "0.5"), "--resume"]) == 1
    assert "lr was 0.002, now 0.5" in capsys.readouterr().err

    assert run([*train_args(data, "base-sgn", existing), "--resume"]) == 1
    assert "holds a model configured differently (model" in capsys.readouterr().err


def test_cuda_without_a_gpu(
    workspace: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = workspace["root"] / "cuda"
    assert run([*train_args(workspace["data"], "gcn", out), "--device", "cuda"]) == 1
    assert (
        "Error: --device cuda was requested but PyTorch sees no CUDA GPU" in capsys.readouterr().err
    )
    assert not out.exists()


def test_learning_rate_schedules() -> None:
    cosine = TrainSettings(epochs=5, warmup_epochs=1, schedule="cosine")
    factors = [learning_rate_factor(e, cosine) for e in range(5)]
    assert factors == pytest.approx(
        [0.5, 1.0, 0.5 + 0.5 * np.cos(np.pi / 4), 0.5, 0.5 - 0.5 * np.cos(np.pi / 4)]
    )
    step = TrainSettings(epochs=10, warmup_epochs=0, schedule="step", optimizer="sgd")
    assert [learning_rate_factor(e, step) for e in (0, 5, 6, 7, 8, 9)] == pytest.approx(
        [1.0, 1.0, 0.1, 0.1, 0.01, 0.01]
    )
    assert step.lr == 0.05 and step.weight_decay == 4e-4


def test_command_line_defaults_are_the_training_defaults() -> None:
    """`mksgn train` and TrainSettings must not drift apart."""
    from mksgn.cli import cli
    from mksgn.train.settings import TrainSettings

    settings = TrainSettings()
    shared = {
        p.name: p.default
        for p in cli.commands["train"].params
        if hasattr(settings, p.name) and isinstance(p.default, int | float | str)
    }
    assert {"kd_weight", "feature_weight", "kd_temperature", "epochs", "seed"} <= set(shared)
    assert shared == {name: getattr(settings, name) for name in shared}


def test_every_train_option_sets_a_setting_or_is_read_by_the_plan() -> None:
    """An option named like a TrainSettings field sets it; the others are the plan's own, so a
    new option cannot be dropped on the way to train()."""
    from mksgn.cli import cli
    from mksgn.train.plan import MODEL_OPTIONS, setting_values

    names = {p.name for p in cli.commands["train"].params}
    settings = setting_values(dict.fromkeys(names), names)
    assert {"benchmark", "epochs", "lr", "kd_weight", "workers"} <= set(settings)
    unset = names - set(settings) - {"data_benchmark"}
    assert unset == set(MODEL_OPTIONS) | {
        "data_path", "model_name", "teacher", "resume", "out_dir", "as_json"
    }  # fmt: skip
