"""Atomic file writes: every file the package writes goes through this module.

A checkpoint, a stored result (``summary.json``, the ``.npz`` parameters, the results index), the
MNIST cache and downloads, a training history, a generated student notebook, a grades table and
the compiled kernel library are all written the same way:

1. into a new temporary file beside the target (same folder, so the rename below stays on one
   file system), named ``.<name>.<random>.tmp``;
2. flushed to disk (``fsync``) and given the permissions ``open()`` would give a new file
   (``0o666`` less the umask, not the owner-only ``0o600`` of ``tempfile.mkstemp``);
3. renamed over the target with ``os.replace``, and the folder is synced too.

A reader therefore sees either the old file or the whole new one, never half a file, and a
writer that fails removes its temporary file; a full disk is reported as such (``ENOSPC``,
naming the file), also where the writer (torch's) raised something else. A writer killed
outright (``SIGKILL``, a power cut) may leave one behind; :func:`clean_orphans` removes those at
the start of the next run.

A target that is a symbolic link is refused before anything is written: the package never writes
to or through a link (which could point anywhere, e.g. at a file of another user).

A lock file is the one kind written otherwise, by :func:`exclusive_write`: created only if it
does not exist, which a rename over the target cannot do.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "atomic_target",
    "atomic_write",
    "clean_orphans",
    "exclusive_write",
    "recover_folder",
    "refuse_symlink",
    "staged_folder",
]

_TMP_SUFFIX = ".tmp"
# the random part of a tempfile.mkstemp name (its characters, not its length: that may change)
_RANDOM = "[a-z0-9_]+"


def refuse_symlink(path: Path) -> None:
    """Raise ``OSError`` (``errno.ELOOP``) naming ``path`` if it is a symbolic link."""
    if path.is_symlink():
        raise OSError(
            errno.ELOOP,
            f"refusing to write through a symbolic link (it points to {os.readlink(path)!r}); "
            "remove the link or choose another path",
            os.fspath(path),
        )


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (threads stay safe)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some file systems refuse fsync on a folder
            os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new temporary path beside ``path``; on success it replaces ``path`` atomically.

    Write the file at the yielded path (an empty file already exists there; a tool such as a
    compiler may also replace it). On normal exit the file is synced, given the usual
    permissions and renamed over ``path``; on an exception it is removed and the exception goes
    on. Raises ``OSError`` (``errno.ELOOP``), before anything is written, if ``path`` is a
    symbolic link. Missing parent folders are created.
    """
    path = Path(path)
    refuse_symlink(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.fchmod(fd, 0o666 & ~_umask())
        finally:
            os.close(fd)
        refuse_symlink(path)  # again: it may have become a link while the file was written
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _no_space(err: BaseException | None) -> bool:
    """Whether ``err`` or an exception it came from (``raise from``, or raised while handling
    one) is an ``OSError`` ``ENOSPC``: torch's writer, say, reports a full disk as a
    ``RuntimeError("... unexpected pos ...")`` raised while handling the ``OSError``."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


def sha256(path: str | os.PathLike) -> str:
    """The sha256 of the file ``path`` (hex), read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[BinaryIO], object]) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_target`) and return the path.

    ``data`` is ``bytes``, a ``str`` (written as UTF-8, newlines unchanged) or a callable
    ``write(f)`` that writes into the binary file object ``f`` (e.g. ``torch.save(obj, f)``).
    A full disk is an ``OSError`` (``errno.ENOSPC``) "no space left on device while writing
    PATH", whatever the writer raised; the temporary file is removed, the old file kept.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, bytes | bytearray | memoryview) and not callable(data):
        raise TypeError(f"data must be bytes, str or a callable, got {type(data).__name__}")
    path = Path(path)
    try:
        with atomic_target(path) as tmp, open(tmp, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
    except (OSError, RuntimeError) as err:
        if not _no_space(err):
            raise
        raise _no_space_error(path) from err
    return path


def _no_space_error(path: Path) -> OSError:
    return OSError(errno.ENOSPC, f"no space left on device while writing {path}")


def exclusive_write(path: str | os.PathLike, data: bytes) -> bool:
    """Create ``path`` holding ``data`` unless it exists; whether this call created it.

    The creation is exclusive (``O_CREAT | O_EXCL``): of processes creating ``path`` at once,
    exactly one succeeds, and an existing file or symbolic link is never replaced nor followed.
    For lock files (:mod:`mfbook._lock`): unlike :func:`atomic_write`, a reader may see the
    file empty for a moment. A write that fails removes the file again. Missing parent folders
    are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # less the umask
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as err:
        path.unlink(missing_ok=True)
        if isinstance(err, OSError) and _no_space(err):
            raise _no_space_error(path) from err
        raise
    return True


def clean_orphans(folder: str | os.PathLike, name: str) -> int:
    """Remove the temporary files a killed writer left beside ``folder / name``; how many.

    Only names of the form ``.<name>.<random>.tmp`` (and ``<name>.<random>.tmp``, the form
    checkpoints used to have) are removed, never the target itself nor another target's files.
    Call it when no other process is writing ``name``, e.g. at the start of a run.
    """
    pattern = re.compile(rf"\.?{re.escape(name)}\.{_RANDOM}{re.escape(_TMP_SUFFIX)}")
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if pattern.fullmatch(entry.name) and not entry.is_dir(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    return removed


def _swap_names(target: Path) -> tuple[Path, Path]:
    return target.with_name(f".{target.name}.staging"), target.with_name(f".{target.name}.old")


def recover_folder(target: str | os.PathLike) -> None:
    """Finish or undo a :func:`staged_folder` swap that was interrupted between its two renames:
    the old folder comes back if the new one never arrived; a leftover staging folder goes."""
    target = Path(target)
    staging, old = _swap_names(target)
    if old.is_dir() and not target.exists():
        old.rename(target)
    if old.is_dir():
        shutil.rmtree(old)
    if staging.is_dir():
        shutil.rmtree(staging)


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging folder beside ``target``; on success it takes ``target``'s place.

    Every file of a result is written into the staging folder; only when all of them are
    complete does the folder replace the old one (two renames: the old folder aside, the new
    one in). An exception leaves the old folder as it was and removes the staging folder, so
    new files are never paired with old ones. Call :func:`recover_folder` first after a crash.
    """
    target = Path(target)
    refuse_symlink(target)
    recover_folder(target)
    staging, old = _swap_names(target)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    _fsync_folder(target.parent)
