"""One fuzz case: a parse of a mutated file under a time limit and a memory watch, and how it
ended (`run_case`): "ok", "error" (MksgnError, the CLI's one `Error:` line) or a defect: "crash"
(any other exception), "hang" (over the time limit), "memory" (a parse that allocated more than
MEMORY_LIMIT_BYTES: memory sized by a number read from the file) or "warning" (printed ahead of
the Error line); a Tally counts the cases of one target."""

from __future__ import annotations

import contextlib
import signal
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mksgn.benchmarks.support.process_probes import memory_status, reset_resident_peak
from mksgn.errors import MksgnError
from mksgn.isolation import take_children_traced_peak

# Seeds are a few kB; an honest parse of a mutated seed stays far below this.
MEMORY_LIMIT_BYTES = 64 << 20
CASE_TIMEOUT_S = 20.0
# A seed-sized HDF5 file reads in milliseconds: past this, libhdf5 is looping on damaged data. It
# bounds NIR reads (which `mksgn convert` stops after NIR_READ_TIMEOUT_S) below CASE_TIMEOUT_S,
# so such a case counts as the Error that convert prints rather than as a hang.
NIR_CASE_READ_S = 5.0
OK, ERROR = "ok", "error"
DEFECTS = ("crash", "hang", "memory", "warning")  # a warning prints ahead of the Error line


class Hang(Exception):
    """Raised by the case timer inside a parse that runs too long."""


@dataclass
class Tally:
    """How the cases of one target ended."""

    cases: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    defects: list[str] = field(default_factory=list)  # "mutation: outcome: detail", first few
    peak_bytes: int = 0

    def add(self, mutation: str, outcome: Outcome) -> None:
        """Count one case."""
        self.cases += 1
        self.outcomes[outcome.kind] = self.outcomes.get(outcome.kind, 0) + 1
        self.peak_bytes = max(self.peak_bytes, outcome.peak_bytes)
        if outcome.kind in DEFECTS and len(self.defects) < 20:
            self.defects.append(f"{mutation}: {outcome.kind}: {outcome.detail}")


@dataclass(frozen=True)
class Outcome:
    """How one parse ended, and the most memory it held at once."""

    kind: str
    detail: str = ""
    peak_bytes: int = 0


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise Hang in the main thread after `seconds`; an outer SIGALRM timer (pytest-timeout)
    is suspended meanwhile and re-armed with what is left of it."""
    started = time.monotonic()

    def expire(_signum: int, _frame: object) -> None:
        raise Hang(f"still running after {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:
            left = outer - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))


def run_case(parse: Callable[[Path], object], path: Path, timeout_s: float = CASE_TIMEOUT_S):
    """Parse `path` under a time limit and tracemalloc; return its Outcome."""
    tracemalloc.start()
    take_children_traced_peak()
    # tracemalloc sees Python's and numpy's allocations, not torch's or a C library's: the
    # growth of the resident peak covers those (0-4 MiB for every honest case measured).
    resident_before = memory_status("VmRSS") if reset_resident_peak() else None
    try:
        with time_limit(timeout_s), warnings.catch_warnings(record=True) as printed:
            warnings.simplefilter("always")
            # What Python hides by default outside __main__ never reaches the user.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            parse(path)
        kind, detail = OK, ""
    except MksgnError as error:
        kind, detail = ERROR, str(error)
        if "\n" in detail:  # the CLI prints one line
            kind, detail = "crash", f"multi-line error: {detail!r}"
    except Hang as error:
        kind, detail = "hang", str(error)
    except BaseException as error:  # the defect being looked for: anything but MksgnError
        if isinstance(error, KeyboardInterrupt):
            raise
        kind, detail = "crash", f"{type(error).__name__}: {error}"[:300]
    finally:
        # A NIR read runs in a child (isolation.call_in_child): count what it allocated too.
        peak = max(tracemalloc.get_traced_memory()[1], take_children_traced_peak())
        if resident_before is not None:
            peak = max(peak, memory_status("VmHWM") - resident_before)
        tracemalloc.stop()
    if kind in (OK, ERROR) and printed:
        kind, detail = "warning", f"{printed[0].category.__name__}: {printed[0].message}"[:300]
    if peak > MEMORY_LIMIT_BYTES and kind != "crash":
        kind, detail = "memory", f"{peak / 2**20:.0f} MiB ({kind}: {detail[:200]})"
    return Outcome(kind, detail, peak)
