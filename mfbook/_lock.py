"""An exclusive lock on a folder: one training at a time writes a run's ``--out`` folder.

:func:`folder_lock` creates the file ``train.lock`` in the folder atomically (``O_CREAT |
O_EXCL``: of two processes exactly one succeeds), holding the holder's pid, host name and start
time as JSON, and removes it on leaving the block, also on an exception. A second process is
refused with :class:`FolderLocked`, whose message names the holder. A lock left by a process
that was killed outright (``SIGKILL``, a power cut) is stale: if its pid is no longer running on
this host it is removed, with a warning, and taken. A lock of another host is never judged
stale (its pid means nothing here): remove it by hand once that run is over.

The lock file is written by :func:`mfbook.io.exclusive_write`, not :func:`~mfbook.io.atomic_write`:
a rename over the target cannot fail when the target exists, and failing then is the point of a
lock. A lock file that cannot be read (being written this very moment, or damaged) is respected.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from mfbook.io import exclusive_write

__all__ = ["LOCK_NAME", "FolderLocked", "folder_lock"]

LOCK_NAME = "train.lock"


class FolderLocked(RuntimeError):
    """The folder is locked by another running process (the message names it)."""


def _holder() -> dict:
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return {"pid": os.getpid(), "hostname": socket.gethostname(), "started": started}


def _create(path: Path, holder: dict) -> bool:
    """Create the lock file holding ``holder``; False if it exists already."""
    return exclusive_write(path, (json.dumps(holder) + "\n").encode())


def _read(path: Path) -> dict | None:
    """The holder recorded in the lock file, None if it cannot be read (or has just gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        try:
            holder = json.loads(f.read(4096))
        except ValueError:
            return None
    return holder if isinstance(holder, dict) else None


def _running(pid) -> bool:
    """Whether ``pid`` is a running process of this host (True where that cannot be told)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it runs, as another user
        return True
    return True


def _stale(holder: dict | None) -> bool:
    return (
        holder is not None
        and holder.get("hostname") == socket.gethostname()
        and not _running(holder.get("pid"))
    )


def _describe(holder: dict | None) -> str:
    if holder is None:
        return "an unknown process (the lock file cannot be read)"
    return f"pid {holder.get('pid')} on {holder.get('hostname')}, started {holder.get('started')}"


def _acquire(path: Path, holder: dict) -> None:
    if _create(path, holder):
        return
    other = _read(path)
    if _stale(other) and _read(path) == other:  # read again: another process may have taken it
        warnings.warn(
            f"removing the stale lock {path} of {_describe(other)}: that process is no longer "
            "running (killed?)",
            stacklevel=4,
        )
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        if _create(path, holder):
            return
        other = _read(path)
    raise FolderLocked(
        f"{path.parent} is in use by another training ({_describe(other)}); wait for it to "
        f"finish, or remove {path} if it is no longer running"
    )


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of ``folder`` (created if missing) for the block; yield the lock's path.

    Raises :class:`FolderLocked` if another running process holds it."""
    path = Path(folder) / LOCK_NAME
    holder = _holder()
    _acquire(path, holder)
    try:
        yield path
    finally:
        if _read(path) == holder:  # never remove a lock that is not ours
            path.unlink(missing_ok=True)
