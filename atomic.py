"""Atomic output: write to a temporary file beside the target, then rename over it.

A write that fails for lack of space or permission (OSError) becomes MksgnError naming the target,
and leaves nothing behind: no temporary, and no folder that was created for the output.

A process killed outright (SIGKILL, the OOM killer) cannot remove its temporary, which for
`data prepare` is a spool as large as the dataset. Temporaries are therefore named after their
owner (`.NAME.HOST-PID.random`), and the next write of the same target removes those whose owner
on this host has ended.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from mksgn.errors import MksgnError
from mksgn.processes import alive


def current_umask() -> int:
    """The process umask (reading it requires setting it; it is restored at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_error(target: Path, error: OSError) -> MksgnError:
    """The error for an output that could not be written (disk full, read-only, ...)."""
    reason = error.strerror or str(error) or type(error).__name__
    remedy = (
        "free some space or choose another location"
        if error.errno in (errno.ENOSPC, errno.EDQUOT)
        else "choose a writable location"
    )
    return MksgnError(f"{target}: cannot write it ({reason}); nothing was written. {remedy}")


def check_writable(target: str | os.PathLike[str]) -> None:
    """Fail at once, before any long work, if `target` could not be created: its nearest
    existing ancestor must be a folder this process may write into."""
    target = Path(target)
    if target.is_dir():
        raise MksgnError(f"{target} is a folder; give a file name for the output")
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise MksgnError(
            f"{target}: cannot write there ({ancestor} is not a folder this process may write "
            "into); nothing was run. Choose a writable location"
        )


def owner_tag() -> str:
    """HOST-PID of this process: a temporary's owner, as temporary_prefix records it."""
    return f"{socket.gethostname()}-{os.getpid()}"


def temporary_prefix(target: Path) -> str:
    """The name prefix of this process's temporaries for `target` (hidden, beside it)."""
    return f".{target.name}.{owner_tag()}."


def remove_stale_temporaries(target: Path, own: bool = False) -> None:
    """Remove the temporaries for `target` left by processes of this host that have ended (another
    host's cannot be checked, so they stay), or with `own`, this process's."""
    host_prefix = f".{target.name}.{socket.gethostname()}-"
    with contextlib.suppress(OSError):  # no folder yet, or not readable: nothing to clean
        for entry in os.scandir(target.parent):
            if not entry.name.startswith(host_prefix):
                continue
            pid, dot, _ = entry.name[len(host_prefix) :].partition(".")
            if not (dot and pid.isdigit()):
                continue
            if (int(pid) != os.getpid()) if own else alive({int(pid)}):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                Path(entry.path).unlink(missing_ok=True)


@contextlib.contextmanager
def created_parent(target: Path) -> Iterator[None]:
    """Create `target`'s missing parent folders; remove them again if the block fails."""
    missing = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(target, error) from None
    try:
        yield
    except BaseException:
        for folder in missing:  # innermost first; stops at the first that is not empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `target`; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    with created_parent(target):
        # One try from before the temporary exists: an interrupt (SIGTERM, Ctrl-C) can land
        # between mkstemp creating it and any later statement, when only its prefix is known.
        try:
            remove_stale_temporaries(target)
            # The temporary keeps the target's suffix so that writers which append one
            # (np.savez) do not.
            fd, tmp_name = tempfile.mkstemp(
                prefix=temporary_prefix(target), suffix=suffix or target.suffix, dir=target.parent
            )
            os.close(fd)
            tmp = Path(tmp_name)
            # mkstemp creates 0600; outputs get the permissions a plain open() would give them.
            tmp.chmod(0o666 & ~current_umask())
            yield tmp
            os.replace(tmp, target)
        except OSError as error:
            remove_stale_temporaries(target, own=True)
            raise write_error(target, error) from None
        except BaseException:
            remove_stale_temporaries(target, own=True)
            raise


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike[str], mode: str = "w") -> Iterator[IO]:
    """Open a temporary file for writing that replaces `target` when closed without error."""
    with atomic_path(target) as tmp, open(tmp, mode) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def atomic_savez(
    target: str | os.PathLike[str], compressed: bool = True, **arrays: np.ndarray
) -> None:
    """Write arrays to an .npz file atomically."""
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    # What np.savez writes, but with the archive closed on failure: numpy leaves it to the
    # garbage collector, which on a full disk printed a second traceback.
    with (
        atomic_path(target, suffix=".npz") as tmp,
        zipfile.ZipFile(tmp, "w", compression=method, allowZip64=True) as archive,
    ):
        for key, value in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def temporary_directory(target: Path) -> Path:
    """A new empty folder beside `target`, named for this process (stale ones are removed)."""
    remove_stale_temporaries(target)
    return Path(tempfile.mkdtemp(prefix=temporary_prefix(target), dir=target.parent))


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory that replaces `target` (file tree) when the block succeeds."""
    target = Path(target)
    with created_parent(target):
        # One try from before the folder exists, as in atomic_path.
        try:
            tmp = temporary_directory(target)
            yield tmp
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        except OSError as error:
            remove_stale_temporaries(target, own=True)
            raise write_error(target, error) from None
        except BaseException:
            remove_stale_temporaries(target, own=True)
            raise
