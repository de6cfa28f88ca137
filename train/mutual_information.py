"""Mutual information between spike counts and labels: the estimate that guides MK-SGN's spiking
multimodal fusion (SMF) weights.

Estimator (plug-in, in nats). Per sample, a neuron group's spikes are summed over time steps,
frames and nodes into one count. The counts are binned at their empirical quantiles (`bins`
equally populated bins; tied counts share a bin, so a mostly silent channel gets few bins), the
joint histogram of (bin, label) gives p(b, y), and

    I(B; Y) = Σ_b Σ_y p(b, y) · log(p(b, y) / (p(b) p(y))).

Bias: the plug-in estimate is biased upwards. For independent count and label it is ≈
(B − 1)(K − 1) / (2N) nats (Miller–Madow; B occupied bins, K classes, N samples), e.g. 0.02 nats
for 8 bins, 8 classes and 1,000 samples; `correct_bias=True` subtracts that term (clipped at 0).
Binning also loses information, so I(B; Y) ≤ I(count; Y): the estimate ranks modalities, it is not
an exact information content. It is bounded by log(min(B, K)).
"""

from __future__ import annotations

import numpy as np


def quantile_bins(values: np.ndarray, bins: int) -> np.ndarray:
    """Bin index (0..bins-1) of every value, cutting at the empirical quantiles."""
    inner = np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return np.searchsorted(np.unique(inner), values, side="right")


def spike_count_mutual_information(
    counts: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    bins: int = 8,
    correct_bias: bool = False,
) -> float:
    """Plug-in mutual information (nats) between quantile-binned spike counts (N,) and labels (N,)."""
    counts = np.asarray(counts, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if counts.shape != labels.shape:
        raise ValueError(f"{counts.shape[0]} counts but {labels.shape[0]} labels")
    if counts.size == 0:
        return 0.0
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}"
        )
    bin_index = quantile_bins(counts, bins)
    joint = np.zeros((int(bin_index.max()) + 1, num_classes))
    np.add.at(joint, (bin_index, labels.astype(np.int64)), 1.0)
    joint /= counts.size
    p_bin = joint.sum(axis=1, keepdims=True)
    p_label = joint.sum(axis=0, keepdims=True)
    occupied = joint > 0
    information = float(
        np.sum(joint[occupied] * np.log(joint[occupied] / (p_bin @ p_label)[occupied]))
    )
    if correct_bias:
        used_bins = int((p_bin > 0).sum())
        used_classes = int((p_label > 0).sum())
        information -= (used_bins - 1) * (used_classes - 1) / (2.0 * counts.size)
    return max(information, 0.0)


def modality_mutual_information(
    counts: np.ndarray, labels: np.ndarray, num_classes: int, bins: int = 8
) -> np.ndarray:
    """(M,) information per modality: the bias-corrected estimate averaged over the modality's
    channels, from per-sample spike counts shaped (N, M, C)."""
    counts = np.asarray(counts)
    if counts.ndim != 3:
        raise ValueError(
            f"expected counts shaped (samples, modalities, channels), got {counts.shape}"
        )
    _, modalities, channels = counts.shape
    return np.array(
        [
            np.mean(
                [
                    spike_count_mutual_information(
                        counts[:, m, c], labels, num_classes, bins, correct_bias=True
                    )
                    for c in range(channels)
                ]
            )
            for m in range(modalities)
        ]
    )


def modality_mi_weights(
    counts: np.ndarray, labels: np.ndarray, num_classes: int, bins: int = 8, mix: float = 0.5
) -> np.ndarray:
    """SMF weights (M,) averaging 1: w_m = (1 − mix) + mix · I_m / mean(I).

    The uniform share (1 − mix) keeps every modality's weight at least 1 − mix, so a modality
    that carries little information early in training still receives gradient and can improve;
    with no information anywhere (e.g. silent layers) all weights are 1.
    """
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"mix must lie in [0, 1], got {mix}")
    information = modality_mutual_information(counts, labels, num_classes, bins)
    mean = float(information.mean())
    if mean <= 0.0:
        return np.ones_like(information)
    return (1.0 - mix) + mix * information / mean
