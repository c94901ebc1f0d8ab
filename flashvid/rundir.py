"""One run per run directory, one process per directory: an OS file lock, no new run over a previous one, and a
writability check before Hydra writes there.

Two ``flashvid train`` on one ``hydra.run.dir`` would interleave config, metrics and checkpoints; two
``flashvid prepare`` into one output would delete each other's temporary files. The lock is a ``flock`` on
``DIR/.flashvid.lock``: the kernel releases it when the process ends, however it ends (``kill -9`` included), so a
stale lock never blocks the next run, unlike a pid file. The file holds the owner's pid, for the message only.

A new run started in the directory of a finished or killed one would silently replace its checkpoints and metrics
(and a forgotten ``resume=true`` after a kill would lose the run): :func:`claim_run_dir` refuses, naming
``resume=true`` and ``overwrite=true`` (which deletes the old outputs first, never merging them).
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

LOCK_FILE = ".flashvid.lock"
# written at every start, not outputs of a run: Hydra's folder (rewritten for each invocation), the lock, and the
# config a start writes before anything can fail (a start that failed on a config mistake left nothing else)
NOT_A_RUN = frozenset({".hydra", LOCK_FILE, "config.yaml"})


class RunDirectoryError(Exception):
    """The run directory cannot be used (busy, not writable, or holding another run); the message says what to do."""


RUN_DIR_UNWRITABLE = ("cannot write in the run directory {dir} ({reason}). Choose a writable one with "
                      "hydra.run.dir=PATH (to resume a run from a read-only copy, copy it first)")


def _unwritable(run_dir: Path, reason: str) -> RunDirectoryError:
    return RunDirectoryError(RUN_DIR_UNWRITABLE.format(dir=run_dir, reason=reason))


def check_writable(run_dir: str | os.PathLike) -> None:
    """Raise :class:`RunDirectoryError` unless ``run_dir`` exists as a writable folder or can be created.

    Checked before Hydra starts: it creates the folder and opens its log file there before any handler runs, and
    fails with a traceback ("Unable to configure handler 'file'") on a read-only one. Creates nothing.
    """
    run_dir = Path(run_dir)
    probe = run_dir
    while not probe.exists() and not probe.is_symlink() and probe.parent != probe:
        probe = probe.parent  # the nearest existing ancestor (a regular file in the way stops here too)
    if not probe.is_dir():
        raise _unwritable(run_dir, f"{probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "" if probe == run_dir else f" at {probe}"
        raise _unwritable(run_dir, ("read-only file system" if _read_only_mount(probe) else "permission denied")
                          + f"{where}: it is read-only or not yours")


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def previous_run(run_dir: str | os.PathLike, ignore: Collection[str] = ()) -> list[str]:
    """What ``run_dir`` holds of an earlier run (sorted names; folders end in ``/``): anything but
    :data:`NOT_A_RUN` and ``ignore`` (this invocation's own files, e.g. Hydra's log)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    return sorted(f"{p.name}/" if p.is_dir() else p.name for p in run_dir.iterdir()
                  if p.name not in NOT_A_RUN and p.name not in ignore)


def claim_run_dir(run_dir: str | os.PathLike, *, resume: bool, overwrite: bool,
                  ignore: Collection[str] = ()) -> None:
    """Start a run in ``run_dir`` only when it holds no earlier run, or when told what to do with that run.

    ``resume``: the run continues the earlier one (nothing is checked here). ``overwrite``: the earlier run's
    outputs are deleted first (Hydra's log of this invocation, named in ``ignore``, is emptied), so nothing of it
    is merged into the new one. Otherwise an earlier run is refused. Call it holding the directory's lock.
    """
    if resume and overwrite:
        raise RunDirectoryError("resume=true continues the run and overwrite=true deletes it: choose one")
    if resume:
        return
    run_dir = Path(run_dir)
    found = previous_run(run_dir, ignore)
    if not found:
        return
    if not overwrite:
        shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
        raise RunDirectoryError(
            f"the run directory {run_dir} holds a previous run ({shown}): continue it with resume=true, start "
            f"over in it with overwrite=true (deletes it), or choose a new one with hydra.run.dir=PATH")
    for name in found:
        path = run_dir / name.rstrip("/")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    (run_dir / "config.yaml").unlink(missing_ok=True)
    for name in ignore:  # Hydra's log file, open for this invocation: emptied, not removed
        if (run_dir / name).is_file():
            os.truncate(run_dir / name, 0)


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
        unwritable=RUN_DIR_UNWRITABLE.replace("{reason}", "{reason}: it is read-only or not yours"))
