"""Time `prepare_ntu` on generated raw NTU files (`python -m mksgn.benchmarks.prepare_speed`);
the files look like NTU RGB+D captures (benchmarks/support/raw_files.py)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mksgn.benchmarks.support.raw_files import write_realistic_raw_files
from mksgn.train.data.body_selection import select_bodies
from mksgn.train.data.prepare import prepare_ntu
from mksgn.train.data.skeleton_file import read_skeleton_file


def main(argv: list[str] | None = None) -> None:
    """Generate the files once, then time prepare_ntu with 1 and 2 workers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000, help="raw files to generate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mksgn-prepare-speed-") as tmp:
        raw = Path(tmp) / "raw"
        started = time.perf_counter()
        paths = write_realistic_raw_files(raw, args.files, args.seed)
        size = sum(path.stat().st_size for path in raw.iterdir()) / 1e6
        print(
            f"generated {args.files} files ({size:.0f} MB) in {time.perf_counter() - started:.1f} s"
        )
        started = time.perf_counter()
        for path in paths:
            select_bodies(read_skeleton_file(path))
        parse_seconds = time.perf_counter() - started
        print(
            f"read + select only, in-process: {len(paths) / parse_seconds:.0f} files/s "
            f"({1000 * parse_seconds / len(paths):.2f} ms per file)"
        )
        for workers in (1, 2):
            summary = prepare_ntu(
                raw, "ntu60-xsub", Path(tmp) / f"out{workers}.npz", workers=workers, progress=False
            )
            kept = summary.kept
            print(
                f"workers={workers}: {summary.parsed} files in {summary.seconds:.2f} s = "
                f"{summary.files_per_second:.0f} files/s (train {kept['train']}, "
                f"test {kept['test']}, skipped {len(summary.skipped)})"
            )


if __name__ == "__main__":
    main()
