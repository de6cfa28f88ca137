"""`mksgn evaluate` and the evaluation tally: hand-computed accuracies, CLI output, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import run
from torch import nn

from mksgn.train.checkpoint import load_model
from mksgn.train.data import synthetic
from mksgn.train.data.formats import SkeletonArrays, write_ctrgcn_npz
from mksgn.train.evaluate import EvaluationTally, evaluate_model, format_evaluation
from mksgn.train.models.cost import dense_macs_per_sample, parameter_count
from mksgn.train.models.output import ModelOutput
from mksgn.train.settings import TrainSettings, config_for_data
from mksgn.train.training import train

FRAMES = 16


def test_tally_by_hand() -> None:
    tally = EvaluationTally(num_classes=6)
    logits = torch.tensor(
        [
            [9, 8, 7, 6, 5, 0],  # true 0 -> predicted 0
            [9, 8, 7, 6, 5, 0],  # true 5 -> predicted 0, class 5 outside the top 5
            [1, 0, 9, 2, 3, 4],  # true 1 -> predicted 2, class 1 ranked 6th: not in top 5
            [0, 9, 1, 2, 3, 4],  # true 1 -> predicted 1
        ],
        dtype=torch.float32,
    )
    tally.add(logits, torch.tensor([0, 5, 1, 1]), {"layer1": 0.25})
    tally.add(logits[:1], torch.tensor([4]), {"layer1": 0.5})  # true 4 -> 0, 4 in the top 5
    result = tally.result()
    assert result.samples == 5
    assert result.top1 == pytest.approx(2 / 5)
    assert result.top5 == pytest.approx(3 / 5)
    assert result.per_class_accuracy == [1.0, 0.5, None, None, 0.0, 0.0]
    expected = np.zeros((6, 6), dtype=int)
    expected[0, 0] = expected[5, 0] = expected[1, 2] = expected[1, 1] = expected[4, 0] = 1
    assert result.confusion == expected.tolist()
    assert result.firing_rates == {"layer1": pytest.approx((0.25 * 4 + 0.5) / 5)}
    text = format_evaluation(result)
    assert "top-1:   0.4000" in text and "n/a" in text and "layer1: 0.3000" in text


class FixedModel(nn.Module):
    """Predicts the class stored in the input's first coordinate; one spiking layer at rate 0.5."""

    def forward(self, x: torch.Tensor) -> ModelOutput:
        classes = x[:, 0, 0, 0, 0].long()
        logits = nn.functional.one_hot(classes, 3).float()
        spikes = torch.tensor([1.0, 0.0]).repeat(1, len(x), 2)
        return ModelOutput(logits=logits, spikes={"s": spikes})


def test_evaluate_model_restores_training_mode() -> None:
    model = FixedModel().train()
    inputs = torch.zeros(4, 3, 2, 25, 1)
    inputs[:, 0, 0, 0, 0] = torch.tensor([0, 1, 2, 2])
    tally = evaluate_model(model, [(inputs, torch.tensor([0, 1, 2, 0]))], 3)
    assert model.training
    result = tally.result()
    assert result.top1 == pytest.approx(0.75)
    assert result.firing_rates == {"s": pytest.approx(0.5)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An MK-SGN trained for one epoch on a 4-class synthetic set."""
    root = tmp_path_factory.mktemp("evaluate")
    data = root / "synth.npz"
    synthetic.write_npz(synthetic.generate(classes=4, samples_per_class=6, frames=FRAMES), data)
    config = config_for_data(data, "mk-sgn", "tiny", time_steps=2, frames=FRAMES)
    train(data, config, TrainSettings(epochs=1, batch_size=8), root / "run", progress=False)
    return {"root": root, "data": data, "checkpoint": root / "run" / "checkpoint.pt"}


def test_evaluate_json(trained: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    args = ["evaluate", str(trained["checkpoint"]), "--data", str(trained["data"]), "--json"]
    assert run(args) == 0
    result = json.loads(capsys.readouterr().out)
    test_samples = len(
        synthetic.generate(classes=4, samples_per_class=6, frames=FRAMES).part("test").labels
    )
    assert result["samples"] == test_samples
    confusion = np.array(result["confusion_matrix"])
    assert confusion.shape == (4, 4) and confusion.sum() == test_samples
    assert result["top1"] == pytest.approx(np.trace(confusion) / test_samples)
    assert result["top5"] == 1.0  # 4 classes: always within the top 5
    assert 0.0 <= result["top1"] <= 1.0
    assert list(result["firing_rates"]) == [f"layer{i}" for i in range(1, 7)]
    assert all(0.0 <= rate <= 1.0 for rate in result["firing_rates"].values())
    assert len(result["per_class_accuracy"]) == 4
    assert result["class_names"] == list(synthetic.class_names(4))
    model, config, _ = load_model(trained["checkpoint"])
    assert result["parameters"] == parameter_count(model) > 0
    assert result["dense_macs_per_sample"] == dense_macs_per_sample(model, config) > 0
    # The final epoch's test accuracy recorded during training is the same evaluation.
    metrics = json.loads(trained["checkpoint"].parent.joinpath("metrics.jsonl").read_text())
    assert metrics["test_acc"] == pytest.approx(result["top1"])


def test_evaluate_text_and_train_split(trained: dict[str, Path], capsys) -> None:
    args = ["evaluate", str(trained["checkpoint"]), "--data", str(trained["data"])]
    assert run([*args, "--split", "train"]) == 0
    out = capsys.readouterr().out
    assert "top-1:" in out and "confusion matrix" in out and "layer6:" in out
    assert "parameters:" in out and "dense MACs per sample:" in out
    assert synthetic.class_names(4)[0] in out


def test_evaluate_on_data_of_another_dataset(trained: dict[str, Path], capsys) -> None:
    rng = np.random.default_rng(0)
    part = SkeletonArrays(
        data=rng.normal(size=(3, 3, FRAMES, 25, 2)).astype(np.float32),
        labels=np.array([0, 1, 2]),
        names=None,
    )
    other = trained["root"] / "three.npz"
    write_ctrgcn_npz(other, part, part, num_classes=3)
    assert run(["evaluate", str(trained["checkpoint"]), "--data", str(other)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Error: {other} has 3 classes but the model in {trained['checkpoint']}")
