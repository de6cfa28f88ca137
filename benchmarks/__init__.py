"""Operation counting, energy models, timing, reports and benchmark scripts."""
