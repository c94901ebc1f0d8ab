"""What every reader of a clip source shares: the facts sampling needs (:class:`VideoInfo`), the one error a file
that cannot give frames raises (:class:`VideoDecodeError`), and the checks before opening one (:func:`check_file`).

Its own module so that the video decoders (:mod:`.decoding`) and the JPEG frame store (:mod:`.frame_store`) share
them without importing each other.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass


class VideoDecodeError(RuntimeError):
    """A file that cannot be decoded into frames; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode {self.path!r}: {reason}")


@dataclass(frozen=True)
class VideoInfo:
    """What sampling needs to know about a video stream."""

    num_frames: int
    fps: float
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def check_file(path: str) -> None:
    """A one-line :class:`VideoDecodeError` for a path that is missing, a broken link, a folder or unreadable."""
    if not os.path.exists(path):
        if os.path.islink(path):
            try:
                os.stat(path)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise VideoDecodeError(
                        path, "symlink loop: the link chain points back to itself; fix or remove it") from None
            raise VideoDecodeError(path, f"broken symlink to {os.readlink(path)!r}: its target is missing")
        raise VideoDecodeError(path, "file not found")
    if os.path.isdir(path):
        raise VideoDecodeError(path, "is a directory, not a video file")
    if not os.access(path, os.R_OK):
        raise VideoDecodeError(path, "permission denied: make the file readable (chmod +r)")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "empty file (0 bytes): re-download or remove it")
