"""Running a library call on untrusted input in a forked child with a time limit.

Some damage in a file makes native code loop or crash rather than raise: a byte-flipped NIR file
sends libhdf5 into a loop that holds the GIL, so neither a Python thread nor a signal handler in
the same process can ever stop it. A child process can be killed from outside, and a segfault in
it is an exit status instead of the end of the command.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import pickle
import signal
import tracemalloc
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TypeVar

from mksgn.lifetime import die_with_parent

Result = TypeVar("Result")


# The most memory tracemalloc saw in a child since the last take_children_traced_peak().
_children_traced_peak = 0


class ChildFailed(Exception):
    """The call raised in the child: `kind` is the exception's type name, `message` its text."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class ChildTimedOut(Exception):
    """The call was still running when its time limit ran out; the child has been killed."""


class ChildDied(Exception):
    """The child ended without a result (a segfault in native code, the OOM killer, ...)."""


def _run(parent: int, sender: Connection, function: Callable, args: tuple) -> None:
    die_with_parent(parent)
    faulthandler.disable()  # the parent reports a crash here as one Error line, without a trace
    # Ctrl-C reaches the whole process group: the parent stops the call and kills this child,
    # which must not print a KeyboardInterrupt traceback of its own (nor on a group SIGTERM).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    reply: dict[str, object] = {}
    with warnings.catch_warnings(record=True) as caught:
        try:
            reply["value"] = function(*args)
        except Exception as error:  # reported to the parent by name and text, not as an object
            reply["raised"] = (type(error).__name__, str(error))
    reply["warnings"] = [(w.category, str(w.message), w.filename, w.lineno) for w in caught]
    # tracemalloc (the fuzz harness's memory check) goes on tracing in a forked child.
    reply["traced_peak"] = tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else 0
    try:
        payload = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # a result (or warning category) pickle cannot carry
        problem = (type(error).__name__, f"result not picklable: {error}")
        payload = pickle.dumps({"raised": problem, "warnings": [], "traced_peak": 0})
    sender.send_bytes(payload)
    sender.close()


def call_in_child(function: Callable[..., Result], *args: object, timeout_s: float) -> Result:
    """Return `function(*args)` computed in a forked child that is killed after `timeout_s`;
    its warnings are re-issued here."""
    # fork, not forkserver or spawn: the child needs what this process has imported (a fresh
    # interpreter spends ~0.4 s importing numpy, h5py and nir per call), and it runs only that
    # library call, never torch, so no lock held by this process's other threads is touched.
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_run, args=(os.getpid(), sender, function, args), daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(timeout_s):
            raise ChildTimedOut(f"still running after {timeout_s:g} s")
        try:
            payload = receiver.recv_bytes()
        except EOFError:
            child.join()
            raise ChildDied(exit_description(child.exitcode)) from None
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receiver.close()
    # The bytes come from this program's own child, pickled from what `function` returned.
    reply = pickle.loads(payload)
    global _children_traced_peak
    _children_traced_peak = max(_children_traced_peak, reply["traced_peak"])
    # The child's warnings appear here, as if the call had run in this process.
    for category, message, filename, lineno in reply["warnings"]:
        warnings.warn_explicit(message, category, filename, lineno)
    if "raised" in reply:
        raise ChildFailed(*reply["raised"])
    return reply["value"]


def take_children_traced_peak() -> int:
    """The most memory tracemalloc traced in any child since the last call (0 when not tracing),
    which a memory check in this process cannot see; resets it."""
    global _children_traced_peak
    peak, _children_traced_peak = _children_traced_peak, 0
    return peak


def exit_description(code: int | None) -> str:
    """'killed by SIGSEGV' or 'exited with code 3' for a multiprocessing exit code."""
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"
