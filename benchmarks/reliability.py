"""Reliability summary: fuzzed readers, injected faults, leaks and peak memory of long jobs.

Run: .venv/bin/python -m mksgn.benchmarks.reliability [--long] [--json]

- fuzz: mutated files per reader (benchmarks/support/fuzz/) and how each ended (ok / Error / defect);
- faults: a Lava process SIGKILLed during start-up (3 times; 20 with --long) and mid-run, SIGTERM
  during simulate, SIGINT during data prepare, a full disk and a read-only folder (tmpfs mounts
  when run as root); each must end with the expected exit code and leave no output, temporary,
  process or /dev/shm segment behind;
- memory: peak RSS of `simulate --backend snntorch` and `data prepare` at two sizes each.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import nir
import numpy as np

from mksgn.benchmarks.support.fuzz.runner import fuzz_all, summary_rows
from mksgn.benchmarks.support.fuzz.seeds import nir_graphs
from mksgn.benchmarks.support.process_probes import (
    descendants,
    first_lava_process_model,
    lava_process_models,
    started_lava_session,
)
from mksgn.benchmarks.support.raw_files import write_realistic_raw_files
from mksgn.processes import alive, processes_where, shm_segments

MKSGN = str(Path(sys.executable).with_name("mksgn"))
NORMAL = {"cases": 200, "simulate": (200, 2000), "prepare": (500, 2000), "start_up_kills": 3}
LONG = {"cases": 2000, "simulate": (1000, 10000), "prepare": (2000, 20000), "start_up_kills": 20}


def peak_rss_mib(args: list[str]) -> tuple[float, int]:
    """(peak RSS of the largest process of `mksgn ARGS`, exit code), measured in a fresh
    interpreter so earlier children do not count."""
    code = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, MKSGN, *args], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0]) / 1024, int(out[1])


def memory_row(job: str, size: str, args: list[str]) -> dict[str, object]:
    """Peak RSS, exit code and wall time of one `mksgn ARGS` run, as a summary row."""
    started = time.perf_counter()
    mib, code = peak_rss_mib(args)
    return {
        "job": job,
        "size": size,
        "peak_rss_mib": round(mib),
        "exit": code,
        "seconds": round(time.perf_counter() - started, 1),
    }


def measure_memory(work: Path, sizes: dict) -> list[dict[str, object]]:
    """Peak RSS of a long simulate (snntorch) and of data prepare, at two sizes each."""
    rows = []
    graph, out = work / "conv.nir", work / "out.npz"
    nir.write(graph, nir_graphs()[1])
    for samples in sizes["simulate"]:
        inputs = work / f"x{samples}.npy"
        rng = np.random.default_rng(0)
        np.save(inputs, rng.normal(0, 2, (samples, 8, 2, 6)).astype(np.float32))
        args = ["simulate", str(graph), "--input", str(inputs), "--backend", "snntorch"]
        rows.append(
            memory_row("simulate snntorch", f"{samples} samples", [*args, "--out", str(out)])
        )
        inputs.unlink()
    for files in sizes["prepare"]:
        raw = work / f"raw{files}"
        raw.mkdir()
        write_realistic_raw_files(raw, files)
        args = ["data", "prepare", "--raw", str(raw), "--benchmark", "ntu60-xsub", "--json"]
        rows.append(memory_row("data prepare", f"{files} files", [*args, "--out", str(out)]))
        shutil.rmtree(raw)
        out.unlink(missing_ok=True)
    return rows


# ---------------------------------------------------------------------------------- faults


def temporaries(folder: Path) -> list[str]:
    """Dot-prefixed (mksgn.atomic temporary) names below `folder`."""
    return [str(p) for p in folder.rglob(".*")]


@contextlib.contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[bool]:
    """Mount a tmpfs on `folder` when possible (root); yields whether it is mounted."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = os.geteuid() == 0 and (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def fault_lava(work: Path, kind: str, delay_s: float = 0.0) -> dict[str, object]:
    """SIGKILL a Lava process model mid-run, or the first one `delay_s` after it appears (during
    Lava's start-up), or SIGTERM the command mid-run, during `simulate --out`."""
    graph, inputs, out = work / "dense.nir", work / "long.npy", work / "out.npz"
    nir.write(graph, nir_graphs()[0])
    np.save(inputs, np.ones((20_000, 4, 4), dtype=np.float32))
    before = shm_segments()
    args = ["simulate", str(graph), "--input", str(inputs), "--backend", "lava-float"]
    # One sample per Lava group keeps the run long enough to be hit (batched: ~10 s in all).
    args += ["--batch-size", "1", "--out", str(out)]
    command = subprocess.Popen(
        [MKSGN, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if kind == "sigkill-lava-at-start-up":
        session, victim = first_lava_process_model(command.pid, timeout_s=120) or (None, None)
        time.sleep(delay_s)
    else:
        session, victim = started_lava_session(command.pid, members=4, timeout_s=120), None
    started = time.monotonic()
    if session is not None:
        if kind == "sigterm-simulate":
            command.send_signal(signal.SIGTERM)
        else:
            victim = victim or lava_process_models(session)[-1]  # mid-run: the last one
            with contextlib.suppress(ProcessLookupError):  # gone already: the run fails anyway
                os.kill(victim, signal.SIGKILL)
    try:
        _, err = command.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        command.kill()
        _, err = command.communicate()
    took = time.monotonic() - started
    time.sleep(0.5)
    # Running processes only: the killed ones stay zombies until init reaps them (~1.5 s here).
    orphans = len(alive(set(processes_where("session", session)))) if session else 0
    expected = 130 if kind == "sigterm-simulate" else 1
    leaks = orphans + len(shm_segments() - before) + int(out.exists()) + len(temporaries(work))
    return {
        "fault": kind if kind != "sigkill-lava-at-start-up" else f"{kind} +{delay_s * 1000:.0f}ms",
        "survived": session is not None and command.returncode == expected and leaks == 0,
        "exit": command.returncode,
        "seconds_to_exit": round(took, 1),
        "leaks": leaks,
        "error": err.strip().splitlines()[-1] if err.strip() else "",
    }


def fault_prepare_sigint(work: Path) -> dict[str, object]:
    """SIGINT to `data prepare` while its pool parses."""
    raw, out = work / "raw", work / "out" / "NTU60_CS.npz"
    raw.mkdir()
    write_realistic_raw_files(raw, 600)
    command = subprocess.Popen(
        [
            MKSGN,
            "data",
            "prepare",
            "--raw",
            str(raw),
            "--benchmark",
            "ntu60-xsub",
            "--out",
            str(out),
            "--workers",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    workers: set[int] = set()
    while len(workers) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        workers = descendants(command.pid)
    time.sleep(0.5)
    command.send_signal(signal.SIGINT)
    _, err = command.communicate(timeout=60)
    deadline = time.monotonic() + 10  # the pool's workers and forkserver exit on their own
    while alive(workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    orphans = len(alive(workers))
    leaks = orphans + int(out.exists()) + len(temporaries(work))
    return {
        "fault": "sigint-data-prepare",
        "survived": command.returncode == 130 and leaks == 0,
        "exit": command.returncode,
        "leaks": leaks,
        "error": err.strip().splitlines()[-1] if err.strip() else "",
    }


def fault_unwritable(work: Path, kind: str) -> dict[str, object]:
    """`data synth` into a full tmpfs or a read-only one."""
    folder = work / kind
    options = "size=24k" if kind == "disk-full" else "size=64k,ro"
    with tmpfs(folder, options) as mounted:
        if not mounted:
            return {"fault": kind, "survived": None, "note": "needs root for a tmpfs"}
        target = folder / "sub" / "d.npz"
        result = subprocess.run(
            [MKSGN, "data", "synth", "--out", str(target), "--classes", "2"],
            capture_output=True,
            text=True,
        )
        lines = result.stderr.strip().splitlines()
        leaks = len(list(folder.iterdir()))
        named = len(lines) == 1 and str(target) in lines[0]
    return {
        "fault": kind,
        "survived": result.returncode == 1 and named and leaks == 0,
        "exit": result.returncode,
        "leaks": leaks,
        "error": lines[-1] if lines else "",
    }


def inject_faults(work: Path, start_up_kills: int) -> list[dict[str, object]]:
    """Every fault, each in its own folder; the start-up kill `start_up_kills` times, 0, 5,
    10, ... ms after the first Lava process appears (its hang was a race)."""
    rows = []
    start_up = [
        (f"sigkill-lava-at-start-up-{n}", partial(fault_lava, kind="sigkill-lava-at-start-up",
                                                  delay_s=n * 0.005))
        for n in range(start_up_kills)
    ]  # fmt: skip
    for name, run in (
        *start_up,
        ("sigkill-lava-process", lambda w: fault_lava(w, "sigkill-lava-process")),
        ("sigterm-simulate", lambda w: fault_lava(w, "sigterm-simulate")),
        ("sigint-data-prepare", fault_prepare_sigint),
        ("disk-full", lambda w: fault_unwritable(w, "disk-full")),
        ("read-only", lambda w: fault_unwritable(w, "read-only")),
    ):
        folder = work / name
        folder.mkdir()
        rows.append(run(folder))
    return rows


def main(argv: list[str] | None = None) -> None:
    """Run everything and print the summary (tables, or one JSON object)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", action="store_true", help="10x the fuzz cases, larger jobs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--skip", nargs="*", default=[], choices=["fuzz", "faults", "memory"])
    args = parser.parse_args(argv)
    faulthandler.enable()  # a parser that crashes the interpreter leaves a trace, not silence
    sizes = LONG if args.long else NORMAL
    summary: dict[str, object] = {"mode": "long" if args.long else "normal"}
    with tempfile.TemporaryDirectory(prefix="mksgn-reliability-") as tmp:
        work = Path(tmp)
        if "fuzz" not in args.skip:
            started = time.perf_counter()
            summary["fuzz"] = summary_rows(fuzz_all(sizes["cases"], work / "fuzz"))
            summary["fuzz_seconds"] = round(time.perf_counter() - started)
        if "faults" not in args.skip:
            (work / "faults").mkdir()
            summary["faults"] = inject_faults(work / "faults", sizes["start_up_kills"])
        if "memory" not in args.skip:
            (work / "memory").mkdir()
            summary["memory"] = measure_memory(work / "memory", sizes)
    fuzz_rows = summary.get("fuzz", [])
    faults = summary.get("faults", [])
    summary["totals"] = {
        "fuzz_cases": sum(r["cases"] for r in fuzz_rows),
        "fuzz_defects": sum(r["defects"] for r in fuzz_rows),
        "faults_injected": len(faults),
        "faults_survived": sum(1 for f in faults if f.get("survived")),
        "leaks": sum(int(f.get("leaks", 0)) for f in faults),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"mksgn reliability summary ({summary['mode']})")
    for row in fuzz_rows:
        print(
            f"  fuzz {row['parser']:15s} {row['cases']:5d} cases: {row['ok']:5d} ok, "
            f"{row['error']:5d} Error, {row['defects']} defects, peak {row['peak_mib']} MiB"
        )
        for defect in row["first_defects"]:
            print(f"      {defect}")
    for fault in faults:
        print(
            f"  fault {fault['fault']:30s} survived={fault['survived']} exit={fault.get('exit')} "
            + (f"in {fault['seconds_to_exit']} s " if "seconds_to_exit" in fault else "")
            + f"leaks={fault.get('leaks')} {fault.get('error', fault.get('note', ''))[:90]}"
        )
    for row in summary.get("memory", []):
        print(
            f"  memory {row['job']:18s} {row['size']:>14s}: peak {row['peak_rss_mib']} MiB "
            f"({row['seconds']} s, exit {row['exit']})"
        )
    print(f"  totals: {json.dumps(summary['totals'])}")
    print(
        f"  (peak RSS is the largest process; this interpreter: "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB)"
    )


if __name__ == "__main__":
    main()
