"""Energy prices per operation (AC, MAC, neuron update) as named presets, and the published
figures reports place beside measured ones. Light to import: no torch, no NIR."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mksgn.errors import MksgnError

PJ_PER_MJ = 1e9


@dataclass(frozen=True)
class EnergyPreset:
    """Energy per operation, in picojoules; the teacher's MAC price and the hardware it means."""

    name: str
    pj_per_ac: float
    pj_per_mac: float
    pj_per_update: float
    teacher_pj_per_mac: float = 4.6
    teacher_hardware: str = "45 nm FP32 accelerator (Horowitz 2014)"

    def energy_mj(self, acs: float, macs: float, neuron_updates: float) -> float:
        """Millijoules of the given operation counts."""
        picojoules = (
            acs * self.pj_per_ac + macs * self.pj_per_mac + neuron_updates * self.pj_per_update
        )
        return picojoules / PJ_PER_MJ


PRESETS: dict[str, EnergyPreset] = {
    "45nm-fp32": EnergyPreset("45nm-fp32", 0.9, 4.6, 0.0),
    "45nm-int8": EnergyPreset(
        "45nm-int8", 0.03, 0.2, 0.0, 0.2, "45 nm INT8 accelerator (Horowitz 2014)"
    ),
    "loihi": EnergyPreset("loihi", 23.6, 23.6, 81.0),
}

# Published GCN figures the MK-SGN paper compares with (GFLOPs of one stream, as their papers
# report them; the multi-stream models run 4 streams). Published, not measured here.
PUBLISHED_GCNS: tuple[tuple[str, float, int], ...] = (
    ("CTR-GCN (Chen et al. 2021)", 1.97, 4),
    ("InfoGCN (Chi et al. 2022)", 1.84, 4),
    ("HD-GCN (Lee et al. 2023)", 1.77, 4),
)
# MK-SGN's own published energy per sample on NTU RGB+D 60 (Zheng et al. 2024), paper-style.
PUBLISHED_MK_SGN_MJ = 0.6
DEFAULT_PRESET = "45nm-fp32"


def resolve_preset(
    name: str = DEFAULT_PRESET,
    ac_pj: float | None = None,
    mac_pj: float | None = None,
    update_pj: float | None = None,
) -> EnergyPreset:
    """A named preset with any per-operation override applied (then named 'custom')."""
    if name not in PRESETS:
        raise MksgnError(f"unknown energy preset {name!r}; choose one of {', '.join(PRESETS)}")
    base = PRESETS[name]
    for label, value in (("--ac-pj", ac_pj), ("--mac-pj", mac_pj), ("--update-pj", update_pj)):
        if value is not None and not (np.isfinite(value) and value >= 0):
            raise MksgnError(f"{label} must be a finite, non-negative energy in pJ, got {value}")
    chosen = EnergyPreset(
        name,
        base.pj_per_ac if ac_pj is None else float(ac_pj),
        base.pj_per_mac if mac_pj is None else float(mac_pj),
        base.pj_per_update if update_pj is None else float(update_pj),
    )
    if (chosen.pj_per_ac, chosen.pj_per_mac, chosen.pj_per_update) != (
        base.pj_per_ac,
        base.pj_per_mac,
        base.pj_per_update,
    ):
        chosen = EnergyPreset("custom", chosen.pj_per_ac, chosen.pj_per_mac, chosen.pj_per_update)
    return chosen
