"""Runners that execute a NIR graph: Lava float, Lava fixed point, snnTorch reference."""
