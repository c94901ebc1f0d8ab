"""One training process per run directory: an OS file lock, taken before anything is written there.

Two ``flashvid train`` on one ``hydra.run.dir`` would interleave config, metrics and checkpoints. The lock is a
``flock`` on ``RUN/.flashvid.lock``: the kernel releases it when the process ends, however it ends (``kill -9``
included), so a stale lock never blocks the next run, unlike a pid file. The file holds the owner's pid, for the
message only.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".flashvid.lock"


class RunDirectoryError(Exception):
    """The run directory cannot be used (busy or not writable); the message says what to do."""


@contextmanager
def locked_run_dir(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold ``run_dir``'s lock for the ``with`` block; fail at once when another process holds it."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise RunDirectoryError(
            f"cannot write in the run directory {run_dir} ({e.strerror}): it is read-only or not yours. "
            "Choose a writable one with hydra.run.dir=PATH (to resume a run from a read-only copy, copy it first)"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirectoryError(
                f"the run directory {run_dir} is in use by another flashvid train (pid {owner}): wait for it to "
                "end, or choose another directory with hydra.run.dir=PATH") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield run_dir
    finally:
        os.close(fd)  # releases the lock
