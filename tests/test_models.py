"""Models: shapes, gradient flow, LIF semantics, folding (BN, attention, fusion), costs."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from model_fixtures import joints, randomize_inference_state
from model_fixtures import tiny_config as shared_tiny_config

from mksgn.convert.folding import fold_student
from mksgn.errors import MksgnError
from mksgn.train.models import build_model, preset_config
from mksgn.train.models.config import LayerSpec, ModelConfig
from mksgn.train.models.cost import dense_macs_per_sample, parameter_count
from mksgn.train.models.layers import GraphConv, SpikingLayer, body_graph, hop_support
from mksgn.train.models.output import encode_input

FRAMES, CLASSES, BATCH = 8, 5, 3


def tiny_config(model: str, **changes) -> ModelConfig:
    """The shared tiny model with this file's classes, time steps and frames."""
    return shared_tiny_config(model, CLASSES, 3, FRAMES, **changes)


@pytest.mark.parametrize("name", ["gcn", "base-sgn", "mk-sgn"])
def test_output_shapes(name: str) -> None:
    config = tiny_config(name)
    out = build_model(config)(joints())
    assert out.logits.shape == (BATCH, CLASSES)
    if name == "gcn":
        assert out.spikes == {}
        assert out.features["block2"].shape == (BATCH, 8, FRAMES // 2, 50)
        return
    first_channels = 4 * (4 if name == "mk-sgn" else 1)
    assert out.spikes["layer1"].shape == (3, BATCH, first_channels, FRAMES, 50)
    assert out.spikes["layer4"].shape == (3, BATCH, 8, FRAMES // 2, 50)
    assert set(out.features) == {"layer1", "layer2", "layer3", "layer4"}
    for spikes in out.spikes.values():
        assert set(torch.unique(spikes).tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("name", ["gcn", "base-sgn", "mk-sgn"])
def test_every_parameter_receives_gradient(name: str) -> None:
    torch.manual_seed(0)
    # Low thresholds make every layer spike, so surrogate gradients reach every layer.
    model = build_model(tiny_config(name, threshold=0.1))
    for module in model.modules():
        if isinstance(module, GraphConv) and module.attention:
            torch.nn.init.constant_(module.gate, 0.5)  # at γ = 0 the attention has no gradient
    out = model(joints())
    torch.nn.functional.cross_entropy(out.logits, torch.arange(BATCH)).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert missing == []


def test_lif_resets_to_zero_like_lava() -> None:
    """v_t = β·v_{t-1}·(1 − s_{t-1}) + I_t, spike when v_t > θ: snnTorch reset_mechanism="zero"."""
    layer = SpikingLayer(channels=2, beta=0.75, threshold=1.0, slope=25.0).eval()
    torch.nn.init.ones_(layer.norm.weight)
    current = torch.rand(12, 4, 2, 3, 5, generator=torch.Generator().manual_seed(1)) * 1.2
    spikes = layer(current)
    v = torch.zeros_like(current[0])
    previous = torch.zeros_like(current[0])
    expected = []
    for step in range(current.shape[0]):
        v = 0.75 * v * (1 - previous) + layer.norm(current[step])
        previous = (v > 1.0).float()
        expected.append(previous)
    assert torch.equal(spikes, torch.stack(expected))
    assert 0 < spikes.mean() < 1


def run_folded(coding, hidden, encoded: torch.Tensor, steps: int) -> list[torch.Tensor]:
    """Currents of every layer computed from folded layers only, with the LIF recurrence."""

    def lif(current: torch.Tensor, beta: float, threshold: float) -> torch.Tensor:
        v, spike, spikes = torch.zeros_like(current[0]), torch.zeros_like(current[0]), []
        for step in range(steps):
            v = beta * v * (1 - spike) + current[step]
            spike = (v > threshold).float()
            spikes.append(spike)
        return torch.stack(spikes)

    currents, parts = [], []
    for layer, x in zip(coding, encoded.split(3, dim=1), strict=True):
        current = layer.synapse(x).unsqueeze(0).expand(steps, -1, -1, -1, -1)
        currents.append(current)
        parts.append(lif(current, layer.beta, layer.threshold))
    spikes = torch.cat(parts, dim=2)
    for layer in hidden:
        current = layer.synapse(spikes.flatten(0, 1)).unflatten(0, (steps, -1))
        currents.append(current)
        spikes = lif(current, layer.beta, layer.threshold)
    return currents


@pytest.mark.parametrize("name", ["base-sgn", "mk-sgn"])
def test_folded_layers_compute_what_the_model_computes(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config(name, threshold=0.3))
    randomize_inference_state(model)
    model.eval()
    x = joints()
    currents = {}

    def keep(name_: str):
        def hook(_module, _inputs, output):
            currents[name_] = output

        return hook

    blocks = list(getattr(model.coding, "branches", {"joint": model.coding}).values())
    blocks += list(model.hidden)
    for index, block in enumerate(blocks):
        # The BN output is the current the neurons integrate.
        block.neurons.norm.register_forward_hook(keep(str(index)))
    with torch.no_grad():
        out = model(x)
        coding, hidden = fold_student(model)
        folded = run_folded(coding, hidden, encode_input(x, model.modalities), 3)
    assert len(folded) == len(blocks)
    for index, current in enumerate(folded):
        reference = currents[str(index)].reshape(current.shape)
        torch.testing.assert_close(current, reference, rtol=0, atol=1e-5)
    assert out.spikes["layer4"].sum() > 0


def test_folding_needs_eval_mode() -> None:
    with pytest.raises(ValueError, match="eval mode"):
        fold_student(build_model(tiny_config("base-sgn")))


def test_attention_folds_into_a_static_adjacency() -> None:
    conv = GraphConv(3, 4, body_graph(2), attention=True)
    torch.nn.init.constant_(conv.gate, 0.7)
    x = torch.randn(2, 3, 5, 50)
    static = conv.effective_adjacency().detach()
    mixed = torch.einsum("kdc,ncfv->nkdfv", conv.weight, x)
    expected = torch.einsum("nkdfv,kvw->ndfw", mixed, static) + conv.bias[:, None, None]
    torch.testing.assert_close(conv(x), expected, rtol=0, atol=1e-5)
    assert not torch.allclose(static, conv.adjacency)


def test_hop_support_grows_along_the_skeleton_and_keeps_bodies_apart() -> None:
    graph = body_graph(2)
    assert (hop_support(graph, 0) == torch.eye(50).numpy().astype(bool)).all()
    one = hop_support(graph, 1)
    assert (one == ((graph.sum(axis=0) > 0) | (graph.sum(axis=0).T > 0))).all()
    two = hop_support(graph, 2)
    assert (two >= one).all() and two.sum() > one.sum()
    # NTU joints 1-based: 4 (head) - 3 (neck) - 21 (spine shoulder) - 5 (left shoulder)
    head, neck, spine_shoulder, left_shoulder = 3, 2, 20, 4
    assert one[head, neck] and not one[head, spine_shoulder]
    assert two[head, spine_shoulder] and not two[head, left_shoulder]
    assert not two[:25, 25:].any() and not hop_support(graph, 30)[:25, 25:].any()


@pytest.mark.parametrize("hops", [1, 2])
def test_attention_stays_on_its_support(hops: int) -> None:
    graph = body_graph(2)
    conv = GraphConv(3, 4, graph, attention=True, attention_hops=hops)
    torch.nn.init.constant_(conv.gate, 0.7)
    torch.nn.init.normal_(conv.query)
    folded = conv.effective_adjacency().detach()
    outside = torch.as_tensor(~hop_support(graph, hops))
    assert float(folded[:, outside].abs().max()) == 0.0
    # Within the support the learned map still moves every column (softmax sums to 1 there).
    attention = (folded - conv.adjacency) / 0.7
    torch.testing.assert_close(attention.sum(dim=1), torch.ones(3, 50))
    dense = GraphConv(3, 4, graph, attention=True)
    torch.nn.init.constant_(dense.gate, 0.7)
    assert float(dense.effective_adjacency().detach()[:, outside].abs().min()) > 0.0


def test_configs_without_attention_hops_keep_dense_attention() -> None:
    config = preset_config("mk-sgn", "tiny", num_classes=4)
    assert config.attention_hops == 2
    saved = config.to_dict()
    del saved["attention_hops"]  # a checkpoint written before supports existed
    assert ModelConfig.from_dict(saved).attention_hops is None
    with pytest.raises(MksgnError, match="attention_hops"):
        dataclasses.replace(config, attention_hops=-1)


def test_bodies_are_separate_copies_of_the_joint_graph() -> None:
    graph = body_graph(2)
    assert graph.shape == (3, 50, 50)
    assert graph[:, :25, 25:].sum() == 0 and graph[:, 25:, :25].sum() == 0
    assert (graph[:, :25, :25] == graph[:, 25:, 25:]).all()


def test_dense_macs_match_the_hand_count() -> None:
    config = dataclasses.replace(
        tiny_config("base-sgn"), layers=(LayerSpec("sgc", 4), LayerSpec("stc", 6, stride=2))
    )
    steps, nodes = config.time_steps, 50
    graph_conv = 3 * 4 * 3 * FRAMES * nodes + 3 * 4 * FRAMES * nodes * nodes  # once: direct coding
    temporal = steps * (FRAMES // 2) * nodes * 6 * 4 * 3  # k = 3, stride 2, every step
    readout = steps * 6 * CLASSES
    assert dense_macs_per_sample(build_model(config), config) == graph_conv + temporal + readout


def test_parameter_count_counts_trainable_parameters() -> None:
    config = dataclasses.replace(tiny_config("base-sgn"), layers=(LayerSpec("sgc", 4),))
    # graph conv 3·4·3 + bias 4; BN 2·4; β, threshold; readout BN 2·4; readout 4·5 + 5
    assert parameter_count(build_model(config)) == 36 + 4 + 8 + 2 + 8 + 25


def test_config_round_trips_and_rejects_bad_values() -> None:
    config = preset_config("mk-sgn", "paper", num_classes=60)
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert [layer.channels for layer in config.layers] == [64, 64, 128, 128, 256, 256]
    assert config.frames == 64 and config.time_steps == 4
    with pytest.raises(MksgnError, match="unknown model"):
        preset_config("resnet", "tiny", num_classes=60)
    with pytest.raises(MksgnError, match="unknown preset"):
        preset_config("gcn", "huge", num_classes=60)
    with pytest.raises(MksgnError, match="unknown keys"):
        ModelConfig.from_dict({**config.to_dict(), "colour": "red"})
