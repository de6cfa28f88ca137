"""The seed benchmark's table: means, spreads and gaps to the teacher from per-seed results."""

from __future__ import annotations

from mksgn.benchmarks.demo_seeds import markdown


def seed_result(teacher: float, base: float, mk: float, student_mj: float) -> dict:
    models = {
        name: {"top1": top1, "test_samples": 60}
        for name, top1 in (("gcn", teacher), ("base-sgn", base), ("mk-sgn", mk))
    }
    energy = {
        "student_mj": student_mj,
        "teacher_mj": 0.1,
        "reduction_percent": 100 * (1 - student_mj / 0.1),
        "samples": 60,
    }
    return {"models": models, "energy": energy}


def test_markdown_gives_mean_spread_and_gap_per_model() -> None:
    summary = {
        "command": "python -m mksgn.benchmarks.demo_seeds --quick",
        "quick": True,
        "energy_backend": "loihi-emu-float",
        "test_samples": 60,
        "seeds": {"0": seed_result(0.9, 0.8, 0.85, 0.005), "1": seed_result(1.0, 0.8, 0.95, 0.007)},
        "reused": False,
        "seconds": 120.0,
    }
    table = markdown(summary)
    assert "| GCN teacher | 95.0 ± 7.1 % (n = 2) |  |" in table
    assert "| Base-SGN | 80.0 ± 0.0 % (n = 2) | 15.0 ± 7.1 |" in table
    assert "| MK-SGN (distilled) | 90.0 ± 7.1 % (n = 2) | 5.0 ± 0.0 |" in table
    assert "0.0060 ± 0.0014 mJ" in table
    assert "94.0 ± 1.4 % less" in table
    assert "90.0 / 80.0 / 85.0; 100.0 / 80.0 / 95.0 %" in table
