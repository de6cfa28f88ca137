"""`mksgn data prepare`: raw NTU RGB+D .skeleton files -> one benchmark's CTR-GCN npz."""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mksgn.errors import MksgnError
from mksgn.lifetime import exit_when_orphaned
from mksgn.train.data.body_selection import NoUsableBody, select_bodies
from mksgn.train.data.formats import MAX_BODIES, CtrgcnSpool
from mksgn.train.data.ntu import (
    BENCHMARKS,
    benchmark_split,
    missing_skeleton_names,
    num_classes,
    parse_sample_name,
)
from mksgn.train.data.skeleton_file import MalformedSkeletonFile, read_skeleton_file

DEFAULT_FRAMES = 300  # CTR-GCN pads every NTU sample to 300 frames
# Files per worker round trip, and round trips queued per worker: small enough that an
# interrupt waits for at most a few files per worker and that parsed samples do not pile up.
PARSE_CHUNK_FILES = 8
CHUNKS_IN_FLIGHT_PER_WORKER = 2

# Why a file was left out; the summary counts and lists files per reason.
SKIP_MISSING_LIST = "missing skeleton list"
SKIP_BAD_NAME = "not an NTU sample name"
SKIP_DUPLICATE = "duplicate sample name"
SKIP_MALFORMED = "malformed"
SKIP_UNREADABLE = "unreadable"
SKIP_NO_BODY = "no usable body"
# Beyond this many, the human summary only counts missing-list names (--json lists them all).
MAX_LISTED_MISSING = 20


@dataclass(frozen=True)
class SkippedFile:
    """A .skeleton file that is not in the output, and why."""

    file: str  # relative to the raw folder
    reason: str
    detail: str = ""


@dataclass
class PrepareSummary:
    """What `prepare_ntu` found, kept, skipped and how long it took."""

    benchmark: str
    raw_dir: str
    out: str
    num_classes: int
    frames: int
    files_found: int = 0
    not_in_benchmark: int = 0
    parsed: int = 0
    train_class_counts: list[int] = field(default_factory=list)
    test_class_counts: list[int] = field(default_factory=list)
    longer_than_frames: int = 0
    empty_frames_dropped: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    seconds: float = 0.0
    file_kind: str = ".skeleton"  # the raw files' extension, for the summary
    layout: str = "ntu-25"  # the skeleton layout the npz records

    @property
    def kept(self) -> dict[str, int]:
        """Samples written per split."""
        return {"train": sum(self.train_class_counts), "test": sum(self.test_class_counts)}

    @property
    def files_per_second(self) -> float:
        """Parsed files per second of the whole run (parsing, selection and writing)."""
        return self.parsed / self.seconds if self.seconds > 0 else 0.0

    def skipped_counts(self) -> dict[str, int]:
        """Number of skipped files per reason."""
        counts: dict[str, int] = {}
        for skipped in self.skipped:
            counts[skipped.reason] = counts.get(skipped.reason, 0) + 1
        return counts

    def warnings(self) -> list[str]:
        """Conditions worth a look that did not stop the run."""
        return [
            f"the {split} split is empty: no kept sample falls in it for {self.benchmark}"
            for split, count in self.kept.items()
            if count == 0
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (the `--json` output)."""
        return {
            "benchmark": self.benchmark,
            "layout": self.layout,
            "raw_dir": self.raw_dir,
            "out": self.out,
            "files_found": self.files_found,
            "not_in_benchmark": self.not_in_benchmark,
            "parsed": self.parsed,
            "kept": self.kept,
            "num_classes": self.num_classes,
            "samples_per_class": {
                "train": _count_range(self.train_class_counts),
                "test": _count_range(self.test_class_counts),
            },
            "frames": self.frames,
            "longer_than_frames": self.longer_than_frames,
            "empty_frames_dropped": self.empty_frames_dropped,
            "skipped_counts": self.skipped_counts(),
            "skipped": [
                {"file": s.file, "reason": s.reason, "detail": s.detail} for s in self.skipped
            ],
            "warnings": self.warnings(),
            "seconds": round(self.seconds, 3),
            "files_per_second": round(self.files_per_second, 1),
        }

    def format(self) -> str:
        """Human-readable summary."""
        kept = self.kept
        train_range = _count_range(self.train_class_counts)
        test_range = _count_range(self.test_class_counts)
        lines = [
            f"Prepared {self.benchmark} from {self.raw_dir} -> {self.out}",
            f"  layout:       {self.layout}",
            f"  files found:  {self.files_found} {self.file_kind}"
            f" ({self.not_in_benchmark} not in {self.benchmark}'s dataset)",
            f"  kept:         train {kept['train']}, test {kept['test']}"
            f" ({self.num_classes} classes; per class: train {train_range['min']}-"
            f"{train_range['max']}, test {test_range['min']}-{test_range['max']})",
            f"  frames:       padded to {self.frames}"
            f" ({self.longer_than_frames} longer samples truncated,"
            f" {self.empty_frames_dropped} frames without a body dropped)",
        ]
        counts = self.skipped_counts()
        by_reason = ", ".join(f"{reason} {count}" for reason, count in counts.items())
        lines.append(f"  skipped:      {len(self.skipped)}" + (f" ({by_reason})" if counts else ""))
        hide_missing = counts.get(SKIP_MISSING_LIST, 0) > MAX_LISTED_MISSING
        for skipped in self.skipped:
            if hide_missing and skipped.reason == SKIP_MISSING_LIST:
                continue
            detail = f": {skipped.detail}" if skipped.detail else ""
            lines.append(f"    {skipped.file}  [{skipped.reason}]{detail}")
        if hide_missing:
            lines.append(
                f"    ({counts[SKIP_MISSING_LIST]} names on the official missing-skeleton list;"
                " --json lists them)"
            )
        lines.extend(f"  warning:      {warning}" for warning in self.warnings())
        lines.append(f"  time:         {self.seconds:.1f} s ({self.files_per_second:.1f} files/s)")
        return "\n".join(lines)


def _count_range(counts: list[int]) -> dict[str, int]:
    return {"min": min(counts, default=0), "max": max(counts, default=0)}


@dataclass(frozen=True)
class _FileResult:
    """What a worker sends back for one file: joints, or why it has none."""

    joints: np.ndarray | None  # (T', 2, 25, 3) float32, frames without a body dropped
    empty_frames: int = 0
    reason: str = ""
    detail: str = ""
    error: str = ""  # the full message, for --strict


def _process_file(path: str) -> _FileResult:
    """Parse one file and select its actors (runs in a worker process)."""
    try:
        skeleton = read_skeleton_file(path)
        return _FileResult(select_bodies(skeleton, MAX_BODIES), skeleton.num_empty_frames)
    except MalformedSkeletonFile as error:
        detail = f"line {error.line}: {error.problem}"
        return _FileResult(None, reason=SKIP_MALFORMED, detail=detail, error=str(error))
    except NoUsableBody:
        return _FileResult(None, reason=SKIP_NO_BODY, detail="no frame contains a body")
    except MksgnError as error:  # read_skeleton_file's "cannot read the file"
        return _FileResult(None, reason=SKIP_UNREADABLE, detail=str(error), error=str(error))


def _parse_chunk(paths: list[str]) -> list[_FileResult]:
    """_process_file over a few paths: one round trip to a worker per chunk, not per file."""
    return [_process_file(path) for path in paths]


def _start_worker(owner: int) -> None:
    """Set up a parser worker: Ctrl-C is the parent's to handle (no tracebacks from workers),
    and a parent killed outright (SIGKILL) must not leave the worker, or its forkserver, behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_when_orphaned(owner)


def _results(paths: Iterable[str], count: int, workers: int) -> Iterator[_FileResult]:
    """Yield a _FileResult per path (`count` of them), in order, from `workers` processes
    (1 = this process)."""
    if workers <= 1 or count <= 1:
        yield from map(_process_file, paths)
        return
    workers = min(workers, count)
    chunksize = max(1, min(PARSE_CHUNK_FILES, count // (workers * 4)))
    remaining = iter(paths)
    chunks = iter(lambda: list(itertools.islice(remaining, chunksize)), [])
    # ProcessPoolExecutor, not multiprocessing.Pool: Pool.terminate() can deadlock when it stops
    # mid-run (a worker blocked writing a parsed sample into the full result pipe holds the lock
    # terminate() needs; seen on SIGTERM in the fault test). forkserver, not fork: forking a
    # process that already runs threads (torch, Lava monitors) can copy a held lock into a worker.
    executor = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_start_worker,
        initargs=(os.getpid(),),
    )
    try:
        # A bounded window of chunks in flight: parsed samples never pile up in memory.
        in_flight = deque(
            executor.submit(_parse_chunk, chunk)
            for chunk in itertools.islice(chunks, workers * CHUNKS_IN_FLIGHT_PER_WORKER)
        )
        while in_flight:
            parsed = in_flight.popleft().result()
            in_flight.extend(executor.submit(_parse_chunk, c) for c in itertools.islice(chunks, 1))
            yield from parsed
    except BrokenProcessPool:
        raise MksgnError(
            "a .skeleton parser process died (killed, or out of memory); nothing was written"
        ) from None
    finally:
        # Leaving early (--strict, Ctrl-C, SIGTERM): queued chunks are dropped, running ones
        # (at most PARSE_CHUNK_FILES files per worker) finish, then the workers exit.
        executor.shutdown(wait=True, cancel_futures=True)


def prepare_ntu(
    raw_dir: str | os.PathLike[str],
    benchmark: str,
    out: str | os.PathLike[str],
    strict: bool = False,
    workers: int | None = None,
    frames: int = DEFAULT_FRAMES,
    progress: bool = True,
) -> PrepareSummary:
    """Parse, denoise and split raw NTU .skeleton files; write a CTR-GCN npz (uncompressed)."""
    started = time.perf_counter()
    raw_dir, out = Path(raw_dir), Path(out)
    if benchmark not in BENCHMARKS:
        raise MksgnError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    if frames < 1:
        raise MksgnError(f"frames must be at least 1, got {frames}")
    if not raw_dir.is_dir():
        raise MksgnError(f"{raw_dir}: not a folder; pass the folder of NTU .skeleton files")
    check_writable(out)

    summary = PrepareSummary(
        benchmark=benchmark,
        raw_dir=str(raw_dir),
        out=str(out),
        num_classes=num_classes(benchmark),
        frames=frames,
    )
    to_parse = _select_files(raw_dir, benchmark, summary)

    bar = tqdm(
        total=len(to_parse),
        desc="Parsing .skeleton files",
        unit="file",
        file=sys.stderr,
        disable=not progress,
    )
    paths = (os.path.join(raw_dir, relative) for relative, _, _ in to_parse)
    # closing() stops the workers at once when the loop ends early (--strict, Ctrl-C).
    results = contextlib.closing(_results(paths, len(to_parse), workers or os.cpu_count() or 1))
    # Samples go to disk as they come: memory stays flat over tens of thousands of files.
    with bar, results as file_results, CtrgcnSpool(out, frames) as spool:
        for (relative, name, split), result in zip(to_parse, file_results, strict=True):
            bar.update()
            summary.parsed += 1
            if result.joints is None:
                if strict and result.error:
                    raise MksgnError(f"{result.error} (--strict stops at the first bad file)")
                summary.skipped.append(SkippedFile(relative, result.reason, result.detail))
                continue
            summary.empty_frames_dropped += result.empty_frames
            summary.longer_than_frames += int(len(result.joints) > frames)
            spool.add(split, name, parse_sample_name(name).label, result.joints)

        total = len(spool.labels["train"]) + len(spool.labels["test"])
        if total == 0:
            counts = ", ".join(f"{r}: {c}" for r, c in summary.skipped_counts().items()) or "none"
            raise MksgnError(
                f"{raw_dir}: no usable {benchmark} sample among {summary.files_found} .skeleton "
                f"files (skipped {counts}); nothing was written to {out}"
            )
        for split, counts in (
            ("train", summary.train_class_counts),
            ("test", summary.test_class_counts),
        ):
            labels = spool.labels[split]
            counts.extend(np.bincount(labels, minlength=summary.num_classes).tolist())
        spool.write(summary.num_classes)
    summary.seconds = time.perf_counter() - started
    return summary


def check_writable(out: Path) -> None:
    """Fail before hours of parsing, not after, when the output cannot be written."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MksgnError(f"{out}: cannot create its folder ({error.strerror or error})") from None
    if not os.access(out.parent, os.W_OK):
        raise MksgnError(f"{out}: its folder {out.parent} is not writable")
    if out.is_dir():
        raise MksgnError(f"{out}: is a folder; pass a file name such as NTU60_CS.npz")


def _skeleton_files(raw_dir: Path) -> list[str]:
    """Every .skeleton file under raw_dir, as sorted paths relative to it."""
    # os.walk and plain strings, not Path.rglob: rglob keeps a set of every Path it has yielded
    # (Python 3.10), and a Path costs ~370 bytes more than its string; over 20,000 files that
    # was 12 MiB of peak memory, 114,480 for NTU120. Like rglob, walk skips symlinked folders.
    found = []
    for folder, _, names in os.walk(raw_dir):
        relative_folder = os.path.relpath(folder, raw_dir)
        for name in names:
            if name.endswith(".skeleton") and os.path.isfile(os.path.join(folder, name)):
                found.append(os.path.normpath(os.path.join(relative_folder, name)))
    return sorted(found)


def _select_files(
    raw_dir: Path, benchmark: str, summary: PrepareSummary
) -> list[tuple[str, str, str]]:
    """Find the benchmark's .skeleton files -> (path relative to raw_dir, sample name, split),
    skipping by name."""
    found = _skeleton_files(raw_dir)
    summary.files_found = len(found)
    if not found:
        raise MksgnError(
            f"{raw_dir}: no .skeleton files found (searched recursively); pass the folder that "
            "holds the NTU RGB+D skeleton files (e.g. nturgb+d_skeletons/)"
        )
    missing = missing_skeleton_names(benchmark)
    seen: set[str] = set()
    selected = []
    for relative in found:
        try:
            sample = parse_sample_name(relative)
        except MksgnError:
            summary.skipped.append(
                SkippedFile(relative, SKIP_BAD_NAME, "expected SsssCcccPpppRrrrAaaa.skeleton")
            )
            continue
        split = benchmark_split(sample, benchmark)
        if split is None:
            summary.not_in_benchmark += 1
            continue
        name = str(sample)
        if name in missing:
            summary.skipped.append(
                SkippedFile(relative, SKIP_MISSING_LIST, "official list of missing skeletons")
            )
            continue
        if name in seen:
            summary.skipped.append(
                SkippedFile(relative, SKIP_DUPLICATE, f"another file is already {name}")
            )
            continue
        seen.add(name)
        selected.append((relative, name, split))
    if not selected and not summary.skipped:
        raise MksgnError(
            f"{raw_dir}: none of the {len(found)} .skeleton files belongs to {benchmark} "
            "(NTU60 has setups S001-S017 and actions A001-A060, NTU120 S001-S032 and A001-A120)"
        )
    return selected
