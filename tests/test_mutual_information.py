"""Mutual-information estimator behind MK-SGN's fusion weights: hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mksgn.train.mutual_information import (
    modality_mi_weights,
    modality_mutual_information,
    quantile_bins,
    spike_count_mutual_information,
)


def test_quantile_bins_are_equally_populated() -> None:
    values = np.arange(80, dtype=float)
    assert np.bincount(quantile_bins(values, 8)).tolist() == [10] * 8


def test_tied_counts_share_a_bin() -> None:
    values = np.array([0, 0, 0, 0, 0, 0, 1, 2], dtype=float)
    bins = quantile_bins(values, 4)
    assert len(set(bins[:6].tolist())) == 1


def test_independent_counts_carry_almost_no_information() -> None:
    rng = np.random.default_rng(0)
    counts = rng.poisson(5.0, size=20000)
    labels = rng.integers(0, 4, size=20000)
    plug_in = spike_count_mutual_information(counts, labels, 4)
    corrected = spike_count_mutual_information(counts, labels, 4, correct_bias=True)
    # Plug-in bias ≈ (B - 1)(K - 1) / 2N = 7 · 3 / 40000 ≈ 5e-4 nats.
    assert 0.0 < plug_in < 2e-3
    assert corrected < plug_in
    assert corrected < 5e-4


def test_deterministic_mapping_gives_log_classes() -> None:
    labels = np.repeat(np.arange(4), 50)
    counts = labels * 10 + np.tile(np.arange(50) % 3, 4)  # distinct ranges per class
    assert spike_count_mutual_information(counts, labels, 4, bins=8) == pytest.approx(math.log(4))


def test_two_classes_hand_computed() -> None:
    # Counts split exactly in half; the upper half is class 1 in 3 of 4 cases:
    # I = H(Y) - H(Y | B) = log 2 - H(3/4).
    counts = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    entropy_quarter = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    expected = math.log(2) - entropy_quarter
    assert spike_count_mutual_information(counts, labels, 2, bins=2) == pytest.approx(expected)


def test_silent_channel_has_no_information() -> None:
    labels = np.repeat(np.arange(3), 10)
    assert spike_count_mutual_information(np.zeros(30), labels, 3) == 0.0


def test_mismatched_lengths_and_bad_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="counts but"):
        spike_count_mutual_information(np.zeros(3), np.zeros(4, dtype=int), 2)
    with pytest.raises(ValueError, match="labels must lie"):
        spike_count_mutual_information(np.zeros(3), np.array([0, 1, 2]), 2)


def test_informative_modality_gets_the_larger_weight() -> None:
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 100)
    informative = labels[:, None] * 5 + rng.integers(0, 2, size=(400, 3))
    noise = rng.integers(0, 20, size=(400, 3))
    counts = np.stack([informative, noise], axis=1)  # (N, modalities 2, channels 3)
    information = modality_mutual_information(counts, labels, 4)
    assert information[0] == pytest.approx(math.log(4), abs=0.05)
    assert information[1] < 0.02
    weights = modality_mi_weights(counts, labels, 4, mix=0.5)
    assert weights.mean() == pytest.approx(1.0)
    assert weights[0] > 1.4 and 0.5 <= weights[1] < 0.6
    assert modality_mi_weights(counts, labels, 4, mix=0.0).tolist() == [1.0, 1.0]


def test_no_information_anywhere_gives_uniform_weights() -> None:
    counts = np.zeros((20, 4, 2))
    labels = np.arange(20) % 2
    assert modality_mi_weights(counts, labels, 2).tolist() == [1.0, 1.0, 1.0, 1.0]
