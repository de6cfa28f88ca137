"""Evaluation reproduces what training saw: batch-norm statistics are recomputed at the current
weights before every evaluation, so a short run does not go silent (or wrong) in eval mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mksgn.train.batch_statistics import recalibrate_batch_norm
from mksgn.train.checkpoint import load_model
from mksgn.train.data import synthetic
from mksgn.train.evaluate import evaluate_model
from mksgn.train.loading import make_loader, open_split
from mksgn.train.models import build_model
from mksgn.train.settings import TrainSettings, config_for_data
from mksgn.train.training import train

FRAMES = 16


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-class synthetic set, 24 train / 24 test samples."""
    path = tmp_path_factory.mktemp("bn") / "synth.npz"
    synthetic.write_npz(synthetic.generate(4, 12, FRAMES, seed=1), path)
    return path


def first_batch(data: Path, config, samples: int) -> torch.Tensor:
    """The first `samples` training samples with test-time sampling."""
    split = open_split(data, "train", config)
    return next(iter(make_loader(split, samples, False, 0, 0)))


def test_short_mk_sgn_run_keeps_its_training_firing_in_evaluation(data: Path, tmp_path: Path):
    # Two epochs of 3 batches: torch's running variance would still be mostly its start value 1,
    # where these currents vary by far less, and evaluation fell silent after layer 1.
    config = config_for_data(data, "mk-sgn", "tiny", time_steps=2, frames=FRAMES)
    train(data, config, TrainSettings(epochs=2, batch_size=8), tmp_path / "run", progress=False)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    model, _, _ = load_model(tmp_path / "run" / "checkpoint.pt")
    inputs, labels = first_batch(data, config, 24)
    tally = evaluate_model(model, [(inputs, labels)], config.num_classes)
    evaluated = tally.result().firing_rates
    trained = metrics[-1]["firing_rates"]
    for layer, rate in trained.items():
        # Same weights and normalisation; the inputs differ only by augmentation.
        assert evaluated[layer] == pytest.approx(rate, rel=0.35, abs=0.01), layer
        assert evaluated[layer] > 0.02, f"{layer} is silent in evaluation"


def test_statistics_of_one_batch_make_eval_equal_to_training_mode(data: Path):
    # Calibrated on exactly the batch it is evaluated on, eval mode normalises with the same
    # mean and (up to the unbiased factor) variance as training mode: the same spikes, nearly all.
    config = config_for_data(data, "mk-sgn", "tiny", time_steps=2, frames=FRAMES)
    torch.manual_seed(0)
    model = build_model(config)
    inputs, _ = first_batch(data, config, 24)
    with torch.no_grad():
        model.train()
        in_training = model(inputs).spikes
        used = recalibrate_batch_norm(model, [(inputs, None)], torch.device("cpu"), 24)
        model.eval()
        in_eval = model(inputs).spikes
    assert used == 24
    for layer, spikes in in_training.items():
        agree = float((spikes == in_eval[layer]).float().mean())
        assert agree > 0.99, (layer, agree)
        assert float(spikes.mean()) > 0.01, f"{layer} is silent"


def test_recalibration_restores_momentum_and_mode(data: Path):
    config = config_for_data(data, "gcn", "tiny", frames=FRAMES)
    model = build_model(config).eval()
    inputs, _ = first_batch(data, config, 8)
    recalibrate_batch_norm(model, [(inputs, None)], torch.device("cpu"), 8)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(norm.momentum == 0.1 for norm in norms)
    assert not model.training
    assert float(norms[0].running_var.mean()) != pytest.approx(1.0)
    # Zero samples asked: nothing is reset.
    before = norms[0].running_var.clone()
    assert recalibrate_batch_norm(model, [(inputs, None)], torch.device("cpu"), 0) == 0
    assert torch.equal(before, norms[0].running_var)
