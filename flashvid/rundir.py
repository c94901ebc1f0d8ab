"""One process per directory: an OS file lock, taken before anything is written there.

Two ``flashvid train`` on one ``hydra.run.dir`` would interleave config, metrics and checkpoints; two
``flashvid prepare`` into one output would delete each other's temporary files. The lock is a ``flock`` on
``DIR/.flashvid.lock``: the kernel releases it when the process ends, however it ends (``kill -9`` included), so a
stale lock never blocks the next run, unlike a pid file. The file holds the owner's pid, for the message only.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

LOCK_FILE = ".flashvid.lock"


class RunDirectoryError(Exception):
    """The run directory cannot be used (busy or not writable); the message says what to do."""


@contextmanager
def locked_dir(directory: str | os.PathLike, busy: str, unwritable: str) -> Iterator[Path]:
    """Hold ``directory``'s lock (creating the directory) for the ``with`` block; fail at once with
    :class:`RunDirectoryError` when another process holds it. ``busy`` and ``unwritable`` are the messages, with
    ``{dir}``, ``{pid}`` (the owner) and ``{reason}`` filled in."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise RunDirectoryError(unwritable.format(dir=directory, reason=e.strerror)) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirectoryError(busy.format(dir=directory, pid=owner)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield directory
    finally:
        os.close(fd)  # releases the lock


def locked_run_dir(run_dir: str | os.PathLike) -> AbstractContextManager[Path]:
    """Hold ``run_dir``'s lock for a training run; fail at once when another process holds it."""
    return locked_dir(
        run_dir,
        busy="the run directory {dir} is in use by another flashvid train (pid {pid}): wait for it to end, or "
             "choose another directory with hydra.run.dir=PATH",
        unwritable="cannot write in the run directory {dir} ({reason}): it is read-only or not yours. Choose a "
                   "writable one with hydra.run.dir=PATH (to resume a run from a read-only copy, copy it first)")
