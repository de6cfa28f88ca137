"""Support for the tests and the reliability benchmark, not product code: fuzzing seeds and
mutators, realistic raw NTU files, and probes of processes and memory."""
