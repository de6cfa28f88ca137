"""Mutation fuzzing of every reader of untrusted files (used by tests/test_fuzz_parsers.py and
benchmarks/reliability.py).

A fuzz *target* writes valid seed files, mutates a seed (byte-level: truncation, byte flips,
inserted garbage; structure-aware: absurd counts, NaN/inf values, wrong dtypes, huge declared
shapes) and parses the result the way a command would. `run_case` classifies how a parse ended:
"ok", "error" (MksgnError, the CLI's one `Error:` line) or a defect: "crash" (any other exception),
"hang" (over the time limit) or "memory" (a parse that allocated more than MEMORY_LIMIT_BYTES:
memory sized by a number read from the file). Mutations are functions of (seed bytes, integer
choices), so hypothesis can draw and shrink the choices and a seeded RNG can drive long runs.

Modules: cases (one parse and how it ended), encoding (.npy and bundle bytes), seeds (valid files
of every format), mutators (the mutations), targets (each reader with its seeds, mutations and
parse), runner (random runs of every target; `python -m mksgn.benchmarks.support.fuzz.runner
[cases]` is a quick manual run).
"""
