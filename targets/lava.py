"""Lava CPU backends (`lava-float`, `lava-fixed`): one built network, samples streamed, watchdog.

The Lava network runs in a child process in its own session; Lava starts one OS process per
process model under it. A Lava error or a process that ends early (killed, out of memory; seen by
SIGCHLD, at start-up too) becomes MksgnError at once, a hang within a timeout derived from the
work size; then the whole session is killed and the shared-memory segments it had mapped are
removed, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from mksgn.convert.lava_plan import LavaPlan
from mksgn.errors import MksgnError
from mksgn.lifetime import wait_until_orphaned
from mksgn.processes import alive, mapped_shm, processes_where, shm_segments
from mksgn.targets.base import RunResult
from mksgn.targets.job import LavaJob, one_after_another, prepare_job, side_by_side
from mksgn.targets.memory import check_fits, lava_bytes
from mksgn.targets.plan_target import PlanTarget

PROGRESS_FILE = "progress.txt"  # "<steps done> <steps in all>", rewritten by the worker
TIMING_FILE = "timing.json"  # the worker's build and run seconds
TIMING_KEY = "mksgn.timing"  # in run_watched's result; population names never take this form
WORKER_CODE = "import sys; from mksgn.targets.lava import worker_main; worker_main(sys.argv[1])"
BASE_TIMEOUT_S = 120.0
TIMEOUT_S_PER_PROCESS_STEP = 0.02
# Building a Sparse synapse (csr from indices, Lava copying it into its process model, the
# fixed-point model's first-step clipping) is paid once per run, per stored nonzero.
SETUP_SECONDS_PER_SPARSE_NONZERO = 1e-7
# The estimate is for an idle machine. A margin of 3 stopped the quick demo's healthy Lava run at
# 157 s on a machine running three other jobs; a child that dies is caught at once
# (fail_when_a_child_ends, error.txt), so the watchdog only has true hangs left to catch.
WATCHDOG_MARGIN = 10.0
# Samples side by side do not pay on Lava's CPU backend for these models: a step's cost is mostly
# the Sparse products, which grow with the batch (quick demo MK-SGN, 16 samples, lava-float:
# 1.57 s/sample one after another, 1.56 two side by side, 2.36 eight side by side). Streaming
# samples back to back through one network (batch 1) is what beats a network per sample.
DEFAULT_BATCH_SIZE = 1


def step_seconds_estimate(plan: LavaPlan) -> float:
    """Wall seconds one Lava step takes at most: processes run in parallel, so the slowest
    synapse process sets the pace (per-synapse costs: Synapse.step_seconds)."""
    return max((synapse.step_seconds() for synapse in plan.synapses), default=0.0)


def setup_seconds_estimate(plan: LavaPlan) -> float:
    """Wall seconds spent once per run building the Sparse synapses (serially, in the worker)."""
    nonzeros = sum(synapse.nonzeros for synapse in plan.synapses if synapse.sparse)
    return nonzeros * SETUP_SECONDS_PER_SPARSE_NONZERO


def watchdog_timeout(plan: LavaPlan, processes: int, steps: int, batch: int = 1) -> float:
    """Seconds after which a Lava run of `steps` steps, `batch` samples side by side, is
    considered hung."""
    per_step = TIMEOUT_S_PER_PROCESS_STEP * processes + batch * step_seconds_estimate(plan)
    once = batch * setup_seconds_estimate(plan)
    return BASE_TIMEOUT_S + WATCHDOG_MARGIN * (once + per_step * steps)


class LavaTarget(PlanTarget):
    """Run a NIR graph on Lava's CPU simulator (Loihi2SimCfg), float or Loihi 2 fixed point."""

    names = ("lava-float", "lava-fixed")
    default_batch_size = DEFAULT_BATCH_SIZE

    def __init__(
        self, fixed_point: bool = False, timeout_s: float | None = None, **options: Any
    ) -> None:
        """Choose fixed point or float; timeout_s None derives the watchdog from the work size;
        the other options (batch_size, dt, input_abs_max, artifact) as for PlanTarget."""
        super().__init__(fixed_point, **options)
        self.timeout_s = timeout_s
        self.timing = {
            "build_s": 0.0,
            "run_s": 0.0,
        }  # seconds of the last run, summed over networks

    def run_plan(
        self, plan: LavaPlan, inputs: np.ndarray, record: tuple[str, ...] = ()
    ) -> RunResult:
        """Run an already lowered plan (see `run`).

        A graph with a recurrent edge or a NIR Delay gets a fresh Lava network per sample:
        LIFReset clears u and v, but on the reset step a back edge still delivers the previous
        sample's last spikes from its synapse's one-step buffer, and a delay line the previous
        sample's last steps, which nothing in Lava can clear."""
        stored = self.artifact.fixed if self.artifact else None
        job = prepare_job(plan, inputs, record, self.fixed_point, self.input_abs_max, stored)
        carries_over = plan.carries_over
        batch = min(self.batch_size, job.samples)
        check_fits(self.name, *lava_bytes(plan, batch, self.fixed_point), batch)
        whole = [(0, job.samples)]
        runs = [(i, min(i + batch, job.samples)) for i in range(0, job.samples, batch)]
        runs = runs if carries_over else whole
        started = time.perf_counter()
        PEAK_RSS["bytes"] = 0
        self.timing = {"build_s": 0.0, "run_s": 0.0}
        parts = [self.execute(job, start, stop, batch) for start, stop in runs]
        raw = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        wall = time.perf_counter() - started
        recorded = job.align(raw, job.samples)
        extra = {
            "lava_peak_rss_mb": PEAK_RSS["bytes"] / 2**20,
            "build_s": self.timing["build_s"],
            "run_s_per_sample": self.timing["run_s"] / max(job.samples, 1),
        }
        return job.result(self.name, recorded, wall, extra)

    def execute(self, job: LavaJob, start: int, stop: int, batch: int = 1) -> dict[str, np.ndarray]:
        """Samples [start, stop) through one Lava network in a watched child, `batch` side by
        side, groups of them back to back; returns the series as one-at-a-time streaming would."""
        samples = stop - start
        groups = -(-samples // batch)
        data = job.stream_data(start, stop)
        lava_job = dict(
            plan=job.plan,
            fixed=job.fixed,
            data=data if batch == 1 else side_by_side(data, samples, job.period, batch),
            period=job.period,
            total_steps=groups * job.period,
            populations=job.populations,
            batch=batch,
        )
        timeout = self.timeout_s
        if timeout is None:
            plan = job.plan
            processes = 2 * len(plan.synapses) + len(plan.populations) + len(job.populations) + 1
            timeout = watchdog_timeout(plan, processes, groups * job.period, batch)
        raw = run_watched(lava_job, timeout, self.name)
        build_s, run_s = raw.pop(TIMING_KEY)
        self.timing["build_s"] += float(build_s)
        self.timing["run_s"] += float(run_s)
        if batch == 1:
            return raw
        shapes = {name: job.plan.populations[name].lava_shape for name in raw}
        return {
            name: one_after_another(series, samples, job.period, batch, shapes[name])
            for name, series in raw.items()
        }


# ---------------------------------------------------------------------------- watchdog


def session_processes(session: int) -> list[int]:
    """Process ids in Lava's session `session`."""
    return processes_where("session", session)


PEAK_RSS = {"bytes": 0}  # largest resident memory of a Lava session seen by run_watched


def session_rss(session: int) -> int:
    """Resident memory (bytes) of a session: the sum of its processes' proportional set sizes.
    Lava forks its process models from the worker, so summing their RSS counted the pages they
    share once per process (78 GB "peak" for a run on a 24 GB machine)."""
    total = 0
    for pid in session_processes(session):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


def killed_by_signal(session: int) -> list[tuple[int, int]]:
    """(pid, signal) of the session's processes that a signal ended and that are still zombies
    (not yet reaped by their parent), to name a killed Lava process in the error."""
    found = []
    for pid in session_processes(session):
        with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/stat") as f:
            stat = f.read()
            fields = stat[stat.rindex(")") + 2 :].split()  # state is first, exit_code 50th
            if fields[0] == "Z" and int(fields[49]) & 0x7F:
                found.append((pid, int(fields[49]) & 0x7F))
    return found


def killed_text(pid: int, number: int) -> str:
    """Why the run failed when signal `number` ended Lava process `pid`."""
    likely = (
        " (likely out of memory: the kernel's OOM killer sends SIGKILL; try a smaller "
        "--batch-size or fewer --samples)"
        if number == signal.SIGKILL
        else ""
    )
    return (
        f"one of its processes (pid {pid}) was killed by {signal.Signals(number).name}"
        f"{likely}; the run was stopped and its processes removed"
    )


def kill_session(session: int, shm_before: set[str] = frozenset()) -> None:
    """Kill every process of a session and remove the shared memory they had mapped, and any
    segment created since `shm_before` that no live process maps (a kill during Lava's start-up
    can catch a segment created but not mapped yet)."""
    pids = session_processes(session)
    segments = mapped_shm(pids)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(session, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    # Wait for the living only: the worker stays a zombie until its parent reaps it after this,
    # and waiting for the zombie too held every failed or killed run for the full 5 s.
    deadline = time.monotonic() + 5.0
    while alive(set(session_processes(session))) and time.monotonic() < deadline:
        time.sleep(0.02)
    live = [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    unclaimed = shm_segments() - set(shm_before) - mapped_shm(live)
    # Named semaphores (sem.*) of other programs appear and are mapped moments apart; removing
    # one broke a concurrent `data prepare` pool. Lava's own leftovers are its data segments.
    unclaimed = {path for path in unclaimed if not os.path.basename(path).startswith("sem.")}
    for segment in segments | unclaimed:
        with contextlib.suppress(OSError):
            os.unlink(segment)


def run_watched(job: dict, timeout_s: float, name: str = "lava") -> dict[str, np.ndarray]:
    """Run a Lava job in a killable child session; MksgnError on timeout, crash or Lava error.
    The result holds the recorded series and, under TIMING_KEY, (build seconds, run seconds);
    a progress bar in steps shows on a terminal."""
    from tqdm import tqdm

    steps = int(job["total_steps"])
    with (
        tempfile.TemporaryDirectory(prefix="mksgn-lava-") as tmp,
        tqdm(total=steps, unit="step", desc=name, disable=None, leave=False) as progress,
    ):
        work = Path(tmp)
        with open(work / "job.pkl", "wb") as handle:
            pickle.dump(job, handle, protocol=pickle.HIGHEST_PROTOCOL)
        shm_before = shm_segments()
        with open(work / "log.txt", "wb") as log:
            child = subprocess.Popen(
                [sys.executable, "-c", WORKER_CODE, str(work)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            session = child.pid
            try:
                # Poll so that the result is read once it exists, even if Lava's shutdown hangs.
                deadline = time.monotonic() + timeout_s
                next_sample = 0.0
                while child.poll() is None and time.monotonic() < deadline:
                    if (work / "done").exists():
                        child.wait(timeout=10)
                        break
                    if time.monotonic() >= next_sample:
                        PEAK_RSS["bytes"] = max(PEAK_RSS["bytes"], session_rss(session))
                        next_sample = time.monotonic() + 0.25
                        progress.update(steps_done(work) - progress.n)
                    time.sleep(0.05)
                timed_out = child.poll() is None and not (work / "done").exists()
            except subprocess.TimeoutExpired:
                timed_out = False
            finally:
                kill_session(session, shm_before)
                child.wait()
        if (work / "error.txt").exists():
            message = (work / "error.txt").read_text().strip().splitlines()
            raise MksgnError(f"Lava simulation failed: {message[-1] if message else 'unknown'}")
        if timed_out:
            raise MksgnError(
                f"Lava simulation did not finish within {timeout_s:.0f} s (watchdog); it was "
                "stopped. A process model may have failed silently (e.g. a float parameter in a "
                "fixed-point model); rerun with a smaller graph or a larger timeout"
            )
        if not (work / "result.npz").exists():
            tail = (work / "log.txt").read_text(errors="replace").strip().splitlines()[-3:]
            raise MksgnError(
                f"Lava simulation exited (code {child.returncode}) without results: "
                + " | ".join(tail)
            )
        with np.load(work / "result.npz", allow_pickle=False) as result:
            series = {key: result[key] for key in result.files}
        timing = json.loads((work / TIMING_FILE).read_text())
        series[TIMING_KEY] = np.array([timing["build_s"], timing["run_s"]])
        return series


def steps_done(work: Path) -> int:
    """Steps the worker reports done (0 before its first report)."""
    try:
        return int((work / PROGRESS_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def end_session_with(parent: int) -> None:
    """Worker thread: once `parent` is gone (even SIGKILLed, which no handler sees), remove the
    shared memory the session maps and kill the whole session, so no Lava process outlives it."""
    wait_until_orphaned(parent)
    session = os.getsid(0)
    for segment in mapped_shm(session_processes(session)):
        with contextlib.suppress(OSError):
            os.unlink(segment)  # unlink first: the kill below ends this thread too
    os.killpg(session, signal.SIGKILL)


def ended_child_text(detail: str) -> str:
    """Why the run failed when one of the worker's processes ended early: its signal if its
    zombie is still there to read, else `detail`. (multiprocessing reaps a dead child whenever
    Lava starts the next one, so during start-up the zombie is often gone.)"""
    killed = killed_by_signal(os.getsid(0))
    if killed:
        return killed_text(*killed[0])
    return f"one of its processes ended unexpectedly ({detail}); was it killed, or out of memory?"


def report_failure(work: Path, reason: str) -> None:
    """Tell the parent why the run failed, then that this worker is done."""
    (work / "error.txt").write_text(f"{reason}\n")
    (work / "done").touch()


def fail_when_a_child_ends(work: Path, stopping: threading.Event) -> None:
    """Make any child of this worker that ends before the run is stopping fail the run at once.
    Lava's runtime has no liveness check: a process killed during start-up left it waiting for
    an answer until the watchdog, and multiprocessing reaps the dead child the next time Lava
    starts one, so polling for zombies can miss it. SIGCHLD cannot be missed: the interpreter's
    C-level handler writes it to a pipe the moment it arrives, which a thread waits on.
    Call from the main thread (signal handlers can only be set there)."""
    wakeups, wakeup_writer = os.pipe()
    os.set_blocking(wakeup_writer, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a Python handler, for the wakeup fd
    signal.siginterrupt(signal.SIGCHLD, False)  # restart interrupted system calls
    signal.set_wakeup_fd(wakeup_writer, warn_on_full_buffer=False)

    def watch() -> None:
        while True:
            numbers = os.read(wakeups, 64)
            if signal.SIGCHLD in numbers and not stopping.is_set():
                report_failure(work, ended_child_text("it exited"))
                os._exit(1)  # the parent kills the rest of the session and removes its memory

    threading.Thread(target=watch, daemon=True).start()


def worker_main(work_dir: str) -> None:
    """Child process: build the Lava network, run it, write result.npz or error.txt."""
    work = Path(work_dir)
    threading.Thread(target=end_session_with, args=(os.getppid(),), daemon=True).start()
    stopping = threading.Event()
    fail_when_a_child_ends(work, stopping)
    try:
        with open(work / "job.pkl", "rb") as handle:
            job = pickle.load(handle)  # our own parent's job file in a private temp dir
        results = simulate(job, work, stopping)
        np.savez(work / "result.npz", **results)
    except BaseException as error:  # report every failure to the parent, then exit non-zero
        stopping.set()
        reason = f"{type(error).__name__}: {error}".strip()
        # A process killed during Lava's start-up surfaces as whatever the runtime tripped over
        # next (EOFError, ConnectionResetError, ...): say that a process ended instead.
        if isinstance(error, (EOFError, ConnectionError)):
            reason = ended_child_text(f"its connection closed: {reason}")
        elif killed := killed_by_signal(os.getsid(0)):
            reason = killed_text(*killed[0])
        report_failure(work, reason)
        os._exit(1)
    (work / "done").touch()
    os._exit(0)  # skip interpreter teardown: Lava's leftovers are the parent's to kill


def simulate(job: dict, record_dir: Path, stopping: threading.Event) -> dict[str, np.ndarray]:
    """Build the plan's processes once and run all samples back to back; the recorders save
    each population's series into `record_dir`. `stopping` is set before Lava's processes are
    stopped (their ending is then expected)."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    from mksgn.targets.lava_processes import build_lava
    from mksgn.targets.lava_recorder import SpikeRecorder, VoltageRecorder

    plan: LavaPlan = job["plan"]
    total = int(job["total_steps"])
    source, lifs = build_lava(
        plan, job["data"], int(job["period"]), job["fixed"], int(job.get("batch", 1))
    )
    files = {}
    for number, (population, kind) in enumerate(job["populations"].items()):
        lif = lifs[population]
        files[population] = record_dir / f"record-{number}.npy"
        if kind == "spikes":
            recorder = SpikeRecorder(lif.s_out.shape, total, str(files[population]))
            lif.s_out.connect(recorder.a_in)
        else:
            recorder = VoltageRecorder(lif.v.shape, total, str(files[population]))
            recorder.ref.connect_var(lif.v)
    tag = "fixed_pt" if job["fixed"] is not None else "floating_pt"
    period = int(job["period"])
    # One sample's steps per run call (a tenth of the run for a single sample), so the parent
    # can show progress; Lava continues its state from one call to the next.
    chunk = period if total > period else max(1, -(-total // 10))
    try:
        started = time.perf_counter()
        source.create_runtime(run_cfg=Loihi2SimCfg(select_tag=tag))
        built = time.perf_counter()
        for done in range(0, total, chunk):
            source.run(condition=RunSteps(num_steps=min(chunk, total - done)))
            (record_dir / PROGRESS_FILE).write_text(f"{min(done + chunk, total)} {total}")
        timing = {"build_s": built - started, "run_s": time.perf_counter() - built}
        (record_dir / TIMING_FILE).write_text(json.dumps(timing))
    except BaseException:
        stopping.set()
        # After a failed start, stop() fails too (e.g. AttributeError from Lava's half-started
        # shared-memory manager); the run's own error is the one to report.
        with contextlib.suppress(Exception):
            source.stop()
        raise
    stopping.set()
    source.stop()
    return {population: np.load(file) for population, file in files.items()}
