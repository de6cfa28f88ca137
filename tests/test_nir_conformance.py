"""NIR conformance: graphs exported by snnTorch's own `export_to_nir` run on every backend.

Float backends must equal the snntorch reference spike for spike; fixed-point backends are
compared with float and with each other (issue 16)."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from cli_runner import run
from snntorch.export_nir import export_to_nir

STEPS, N_IN = 30, 12
FLOAT_BACKENDS = ("lava-float", "loihi-emu-float")
FIXED_BACKENDS = ("lava-fixed", "loihi-emu")


def synaptic(n: int, recurrent: bool = False, bias: bool = False) -> torch.nn.Module:
    """snnTorch Synaptic (or RSynaptic) with per-neuron α, β and thresholds, reset to zero."""
    params = dict(
        alpha=torch.full((n,), 0.8),
        beta=torch.full((n,), 0.9),
        threshold=torch.full((n,), 1.0),
        reset_mechanism="zero",
        init_hidden=True,
    )
    if recurrent:
        neuron = snn.RSynaptic(linear_features=n, **params)
        if not bias:
            with torch.no_grad():
                neuron.recurrent.bias.zero_()  # the recurrent nn.Linear has one by default
        return neuron
    return snn.Synaptic(**params)


def leaky(n: int, beta: float, threshold: float) -> torch.nn.Module:
    """snnTorch Leaky with per-neuron β and threshold, reset to zero."""
    return snn.Leaky(
        beta=torch.full((n,), beta),
        threshold=torch.full((n,), threshold),
        reset_mechanism="zero",
        init_hidden=True,
    )


def conv_network() -> torch.nn.Module:
    """snnTorch Conv2d -> Leaky (per-neuron β over (C, H, W)) -> AvgPool2d -> Flatten -> Linear
    -> Leaky, on a (1, 6, 6) input. Without biases: a negative voltage bias under a slow leak
    drives v below Lava's 24-bit range (lava-fixed wraps; the emulator refuses)."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 4, 3, padding=1, bias=False)
    fc = torch.nn.Linear(36, 6, bias=False)
    with torch.no_grad():
        conv.weight.mul_(3.0)
        fc.weight.mul_(3.0)
    map_leaky = snn.Leaky(
        beta=torch.full((4, 6, 6), 0.9),
        threshold=torch.full((4, 6, 6), 0.5),
        reset_mechanism="zero",
        init_hidden=True,
    )
    return torch.nn.Sequential(
        conv, map_leaky, torch.nn.AvgPool2d(2), torch.nn.Flatten(), fc, leaky(6, 0.8, 0.5)
    )


def networks(bias: bool) -> dict[str, torch.nn.Module]:
    """The networks of issue 16 (Linear layers with or without bias)."""
    torch.manual_seed(0)

    def linear(n_in: int, n_out: int, gain: float = 1.0) -> torch.nn.Linear:
        layer = torch.nn.Linear(n_in, n_out, bias=bias)
        with torch.no_grad():
            layer.weight.mul_(gain)
        return layer

    return {
        "leaky3": torch.nn.Sequential(
            linear(N_IN, 10, 3.0),
            leaky(10, 0.9, 0.5),
            linear(10, 8, 3.0),
            leaky(8, 0.8, 0.5),
            linear(8, 6, 3.0),
            leaky(6, 0.85, 0.4),
        ),
        "synaptic2": torch.nn.Sequential(
            linear(N_IN, 10), synaptic(10), linear(10, 6, 0.5), synaptic(6)
        ),
        "rsynaptic": torch.nn.Sequential(
            linear(N_IN, 10),
            synaptic(10, recurrent=True, bias=bias),
            linear(10, 6, 0.5),
            synaptic(6),
        ),
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """The spike input and each network's NIR file, with and without biases (the conv network
    takes its own input, next to its file)."""
    folder = tmp_path_factory.mktemp("conformance")
    generator = torch.Generator().manual_seed(1)
    spikes = (torch.rand(STEPS, 1, N_IN, generator=generator) < 0.3).float()
    np.save(folder / "x.npy", spikes[:, 0].numpy())
    files = {}
    for bias in (False, True):
        for name, net in networks(bias=bias).items():
            name = f"{name}-bias" if bias else name
            files[name] = folder / f"{name}.nir"
            nir.write(files[name], export_to_nir(net, spikes[0], ignore_dims=[0]))
    maps = (torch.rand(STEPS, 1, 1, 6, 6, generator=generator) < 0.3).float()
    np.save(folder / "conv2d.npy", maps[:, 0].numpy())
    files["conv2d"] = folder / "conv2d.nir"
    nir.write(files["conv2d"], export_to_nir(conv_network(), maps[0], ignore_dims=[0]))
    return folder / "x.npy", files


def simulate(graph: Path, inputs: Path, backend: str, out: Path) -> np.ndarray:
    """The Output spikes of `mksgn simulate` on one backend."""
    args = ["simulate", str(graph), "--input", str(inputs), "--backend", backend]
    assert run([*args, "--out", str(out)]) == 0, backend
    with np.load(out) as saved:
        return saved["output"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "name",
    [
        "leaky3",
        "synaptic2",
        "rsynaptic",
        "leaky3-bias",
        "synaptic2-bias",
        "rsynaptic-bias",
        "conv2d",
    ],
)
def test_snntorch_exports_agree_on_every_backend(exported, tmp_path: Path, name: str) -> None:
    """Float backends equal the reference spike for spike; loihi-emu equals lava-fixed bit for
    bit, and fixed point keeps most of float's output entries."""
    inputs, files = exported
    inputs = files[name].with_suffix(".npy") if name == "conv2d" else inputs
    results = {
        backend: simulate(files[name], inputs, backend, tmp_path / f"{backend}.npz")
        for backend in ("snntorch", *FLOAT_BACKENDS, *FIXED_BACKENDS)
    }
    reference = results["snntorch"]
    assert 0 < reference.mean() < 1, f"{name}: trivial test (rate {reference.mean()})"
    for backend in FLOAT_BACKENDS:
        assert np.array_equal(results[backend], reference), (backend, reference.sum())
    assert np.array_equal(results["loihi-emu"], results["lava-fixed"])
    agreement = np.mean(results["lava-fixed"] == reference)
    assert agreement >= 0.9, f"{name}: fixed point agrees with float on {agreement:.1%}"


def test_biased_cubalif_runs_its_bias_through_the_current(exported) -> None:
    """NIR filters a bias into a CubaLIF through its synaptic current: on Lava it arrives as the
    input of a one-neuron source that spikes on every step, not as a voltage bias."""
    from mksgn.convert.lava_graph import build_plan
    from mksgn.convert.lava_plan import BIAS_SOURCE
    from mksgn.convert.nir_io import read_nir

    _, files = exported
    plan = build_plan(read_nir(files["synaptic2-bias"]))
    sources = [p for p in plan.populations.values() if p.nir_type == BIAS_SOURCE]
    assert {p.name for p in sources} == {"1.bias", "3.bias"}
    for source in sources:
        (synapse,) = [s for s in plan.synapses if s.source == source.name]
        target = plan.populations[synapse.target]
        assert source.depth == target.depth - 1 and synapse.extra_hops == 0
        assert np.any(synapse.weight != 0) and not np.any(target.bias)


def test_unsupported_neuron_is_one_error_line(tmp_path: Path, capsys) -> None:
    """A neuron Lava cannot run (a CubaLIF resetting to v_reset ≠ 0) is refused with one Error
    line naming the node, before Lava starts; the reference still runs it."""
    spikes = torch.zeros(STEPS, 1, N_IN)
    np.save(tmp_path / "x.npy", spikes[:, 0].numpy())
    graph = export_to_nir(networks(bias=True)["synaptic2"], spikes[0], ignore_dims=[0])
    graph.nodes["1"].v_reset = np.full(10, 0.25, dtype=np.float32)
    nir.write(tmp_path / "reset.nir", graph)
    capsys.readouterr()
    args = ["simulate", str(tmp_path / "reset.nir"), "--input", str(tmp_path / "x.npy")]
    for backend in ("lava-float", "loihi-emu"):
        assert run([*args, "--backend", backend]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("Error: node '1' (CubaLIF)"), err
    assert run([*args, "--backend", "snntorch"]) == 0
